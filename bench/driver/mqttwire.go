package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// A minimal MQTT 5 client for the mqtt mode: CONNECT, PUBLISH at QoS 1,
// SUBSCRIBE, PUBACK, DISCONNECT, on one TCP connection, writing what is
// ready in one system call and allocating nothing per message, so that the
// load costs little beside the broker (the report gives its CPU per message).

// MQTT packet types (the high nibble of the first byte).
const (
	mqttConnect    = 0x10
	mqttConnack    = 0x20
	mqttPublish    = 0x30
	mqttPuback     = 0x40
	mqttSubscribe  = 0x82 // with the flags SUBSCRIBE requires
	mqttSuback     = 0x90
	mqttDisconnect = 0xe0
)

// mqttConn is one MQTT 5 connection; r and w are used by one goroutine each.
type mqttConn struct {
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	body []byte // the last packet read
}

// dialMQTT connects and sends CONNECT (clean start, no credentials) with
// clientID, and checks the CONNACK.
func dialMQTT(addr, clientID string) (*mqttConn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	m := &mqttConn{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
	var vh []byte
	vh = appendString(vh, "MQTT")
	vh = append(vh, 5, 0x02, 0, 60) // version 5, clean start, keep-alive 60 s
	vh = append(vh, 0)              // no properties
	vh = appendString(vh, clientID)
	m.writePacket(mqttConnect, vh)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if err := m.w.Flush(); err != nil {
		c.Close()
		return nil, err
	}
	typ, err := m.read()
	switch {
	case err != nil:
	case typ != mqttConnack || len(m.body) < 2:
		err = fmt.Errorf("expected CONNACK, got packet type %#x", typ)
	case m.body[1] != 0:
		err = fmt.Errorf("CONNACK reason %#x", m.body[1])
	}
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("connect %s as %s: %w", addr, clientID, err)
	}
	return m, nil
}

// subscribe subscribes at QoS 1 to filters and checks the SUBACK; no
// message may arrive before it (call it before anything publishes).
func (m *mqttConn) subscribe(filters []string) error {
	vh := []byte{0, 1, 0} // packet ID 1, no properties
	for _, f := range filters {
		vh = appendString(vh, f)
		vh = append(vh, 1) // QoS 1
	}
	m.writePacket(mqttSubscribe, vh)
	if err := m.w.Flush(); err != nil {
		return err
	}
	_ = m.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer m.c.SetReadDeadline(time.Time{})
	typ, err := m.read()
	if err != nil {
		return err
	}
	if typ != mqttSuback {
		return fmt.Errorf("expected SUBACK, got packet type %#x", typ)
	}
	codes, err := afterProperties(m.body[2:])
	if err != nil {
		return err
	}
	if len(codes) != len(filters) {
		return fmt.Errorf("SUBACK has %d codes for %d filters", len(codes), len(filters))
	}
	for i, c := range codes {
		if c != 1 {
			return fmt.Errorf("subscription %s: SUBACK reason %#x", filters[i], c)
		}
	}
	return nil
}

// publish buffers a QoS 1 PUBLISH; flush sends it.
func (m *mqttConn) publish(topic string, id uint16, payload []byte) {
	n := 2 + len(topic) + 2 + 1 + len(payload)
	m.w.WriteByte(mqttPublish | 1<<1)
	m.writeLength(n)
	m.writeString(topic)
	m.w.WriteByte(byte(id >> 8))
	m.w.WriteByte(byte(id))
	m.w.WriteByte(0) // no properties
	m.w.Write(payload)
}

// puback buffers the PUBACK of packet id (reason success).
func (m *mqttConn) puback(id uint16) {
	m.w.Write([]byte{mqttPuback, 2, byte(id >> 8), byte(id)})
}

func (m *mqttConn) flush() error { return m.w.Flush() }

// disconnect sends DISCONNECT (normal) and closes the connection.
func (m *mqttConn) disconnect() {
	_ = m.c.SetWriteDeadline(time.Now().Add(time.Second))
	m.w.Write([]byte{mqttDisconnect, 0})
	_ = m.w.Flush()
	m.c.Close()
}

// read reads one packet into m.body and returns its first byte's type
// nibble (with the flags of SUBSCRIBE-like types cleared).
func (m *mqttConn) read() (byte, error) {
	b0, err := m.r.ReadByte()
	if err != nil {
		return 0, err
	}
	n, err := binary.ReadUvarint(m.r) // MQTT's remaining length is a base-128 varint
	if err != nil {
		return 0, err
	}
	if n > 1<<20 {
		return 0, fmt.Errorf("packet of %d bytes", n)
	}
	if cap(m.body) < int(n) {
		m.body = make([]byte, n)
	}
	m.body = m.body[:n]
	if _, err := io.ReadFull(m.r, m.body); err != nil {
		return 0, err
	}
	return b0, nil
}

// pubackOf returns the packet ID and reason code of the PUBACK in m.body.
func (m *mqttConn) pubackOf() (id uint16, reason byte, err error) {
	if len(m.body) < 2 {
		return 0, 0, errors.New("short PUBACK")
	}
	id = binary.BigEndian.Uint16(m.body)
	if len(m.body) > 2 {
		reason = m.body[2]
	}
	return id, reason, nil
}

// publishOf returns the topic, packet ID (0 at QoS 0) and payload of the
// PUBLISH in m.body, whose first byte was b0; they alias m.body.
func (m *mqttConn) publishOf(b0 byte) (topic []byte, id uint16, payload []byte, err error) {
	b := m.body
	if len(b) < 2 {
		return nil, 0, nil, errors.New("short PUBLISH")
	}
	tl := int(binary.BigEndian.Uint16(b))
	if len(b) < 2+tl {
		return nil, 0, nil, errors.New("short PUBLISH topic")
	}
	topic, b = b[2:2+tl], b[2+tl:]
	if b0>>1&3 > 0 {
		if len(b) < 2 {
			return nil, 0, nil, errors.New("short PUBLISH packet ID")
		}
		id, b = binary.BigEndian.Uint16(b), b[2:]
	}
	payload, err = afterProperties(b)
	return topic, id, payload, err
}

// afterProperties skips an MQTT 5 property block (a varint length and the
// properties) at the start of b.
func afterProperties(b []byte) ([]byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return nil, errors.New("bad property length")
	}
	return b[k+int(n):], nil
}

func (m *mqttConn) writePacket(typ byte, body []byte) {
	m.w.WriteByte(typ)
	m.writeLength(len(body))
	m.w.Write(body)
}

func (m *mqttConn) writeLength(n int) {
	var buf [binary.MaxVarintLen32]byte
	m.w.Write(buf[:binary.PutUvarint(buf[:], uint64(n))])
}

func (m *mqttConn) writeString(s string) {
	m.w.WriteByte(byte(len(s) >> 8))
	m.w.WriteByte(byte(len(s)))
	m.w.WriteString(s)
}

func appendString(b []byte, s string) []byte {
	return append(binary.BigEndian.AppendUint16(b, uint16(len(s))), s...)
}
