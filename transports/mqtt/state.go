package mqtt

import (
	"log/slog"
	"strings"
	"sync"
	"time"
)

// State keeps the last message seen on each topic it is fed, for the
// last-known-state routes. It holds at most a bounded number of topics; once
// full, new topics are not kept, and a warning says so.
type State struct {
	max int
	log *slog.Logger

	mu      sync.RWMutex
	last    map[string]stateEntry
	refused int64 // messages of topics not kept because the store was full
}

type stateEntry struct {
	msg *Message
	at  time.Time
}

// NewState returns a store of at most maxTopics topics (default 10000).
func NewState(maxTopics int, log *slog.Logger) *State {
	if maxTopics <= 0 {
		maxTopics = 10000
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &State{max: maxTopics, log: log, last: map[string]stateEntry{}}
}

// Observe records m as the last message of its topic.
func (s *State) Observe(m *Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.last[m.Topic]; !ok && len(s.last) >= s.max {
		s.refused++
		if s.refused&(s.refused-1) == 0 { // 1, 2, 4, 8...: visible, not flooding
			s.log.Warn("mqtt state store full; topic not kept", "topic", m.Topic, "max_topics", s.max, "refused", s.refused)
		}
		return
	}
	s.last[m.Topic] = stateEntry{msg: m, at: time.Now()}
}

// Last returns the last message seen on topic and when it arrived.
func (s *State) Last(topic string) (*Message, time.Time, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.last[topic]
	return e.msg, e.at, ok
}

// MatchFilter reports whether topic matches the MQTT topic filter ("+" one
// level, "#" any number of levels at the end).
func MatchFilter(filter, topic string) bool {
	for {
		f, frest, fmore := strings.Cut(filter, "/")
		if f == "#" {
			return true
		}
		t, trest, tmore := strings.Cut(topic, "/")
		if f != "+" && f != t {
			return false
		}
		if !fmore || !tmore {
			// "a/#" also matches "a".
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}
