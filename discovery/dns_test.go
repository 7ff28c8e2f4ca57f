package discovery

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// dnsmasq is a real resolver serving the test's records on a loopback
// port: A records from a hosts file (reloaded on SIGHUP), SRV records from
// its configuration (read at start).
type dnsmasq struct {
	t     *testing.T
	bin   string
	dir   string
	addr  string
	cmd   *exec.Cmd
	out   *syncBuffer
	done  chan struct{}
	loads int // "read HOSTS" lines seen
}

func startDnsmasq(t *testing.T, ttl int, hosts string, srv ...string) *dnsmasq {
	t.Helper()
	d := &dnsmasq{t: t, bin: binary(t, "dnsmasq", "dnsmasq"), dir: t.TempDir(), addr: freeAddr(t)}
	// dnsmasq started as root drops to nobody, who must read the files.
	if err := os.Chmod(d.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.writeHosts(hosts)
	d.configure(ttl, srv...)
	d.start()
	t.Cleanup(d.stop)
	return d
}

func (d *dnsmasq) writeHosts(hosts string) {
	if err := os.WriteFile(filepath.Join(d.dir, "hosts"), []byte(hosts), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func (d *dnsmasq) configure(ttl int, srv ...string) {
	_, port, _ := strings.Cut(d.addr, ":")
	conf := fmt.Sprintf("port=%s\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\naddn-hosts=%s\nlocal-ttl=%d\n",
		port, filepath.Join(d.dir, "hosts"), ttl)
	for _, s := range srv {
		conf += "srv-host=" + s + "\n"
	}
	if err := os.WriteFile(filepath.Join(d.dir, "dnsmasq.conf"), []byte(conf), 0o644); err != nil {
		d.t.Fatal(err)
	}
}

// start runs dnsmasq and waits until it has read the hosts file.
func (d *dnsmasq) start() {
	d.out = &syncBuffer{}
	d.cmd = exec.Command(d.bin, "--no-daemon", "--conf-file="+filepath.Join(d.dir, "dnsmasq.conf"), "--pid-file=", "--log-facility=-")
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	d.done = make(chan struct{})
	go func() {
		d.cmd.Wait()
		close(d.done)
	}()
	d.loads = 0
	d.waitLoad()
}

// waitLoad waits for dnsmasq to log one more reading of the hosts file.
func (d *dnsmasq) waitLoad() {
	d.t.Helper()
	d.loads++
	deadline := time.After(watchTimeout)
	for strings.Count(d.out.String(), "read "+filepath.Join(d.dir, "hosts")) < d.loads {
		select {
		case <-d.done:
			d.t.Fatalf("dnsmasq exited:\n%s", d.out)
		case <-deadline:
			d.t.Fatalf("dnsmasq did not read its hosts file within %v:\n%s", watchTimeout, d.out)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// reload rewrites the hosts file and sends SIGHUP.
func (d *dnsmasq) reload(hosts string) {
	d.t.Helper()
	d.writeHosts(hosts)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		d.t.Fatal(err)
	}
	d.waitLoad()
}

func (d *dnsmasq) stop() {
	select {
	case <-d.done:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
}

// TestDNSAddresses: the A records of a name, at the configured port,
// followed as dnsmasq's hosts change (SIGHUP), refreshed on their TTL; a
// resolver that stops answering keeps the last good set until it is back.
func TestDNSAddresses(t *testing.T) {
	d := startDnsmasq(t, 1, "127.0.0.1 lib.test\n")
	src := &DNS{Name: "lib.test", Port: 9090, Resolver: d.addr, Timeout: 200 * time.Millisecond}
	w := watch(t, src, Options{})
	w.want(t, "127.0.0.1:9090/1")

	d.reload("127.0.0.1 lib.test\n127.0.0.2 lib.test\n::1 lib.test\n")
	w.want(t, "127.0.0.1:9090/1", "127.0.0.2:9090/1", "[::1]:9090/1")
	d.reload("127.0.0.2 lib.test\n")
	w.want(t, "127.0.0.2:9090/1")

	// The resolver goes away: lookups fail, the set stays.
	d.stop()
	w.waitErrors(t, "dns", "lookup")
	w.quiet(t)
	d.writeHosts("127.0.0.3 lib.test\n")
	d.start()
	w.want(t, "127.0.0.3:9090/1")
}

// TestDNSTTL: the refresh interval is the records' TTL, clamped.
func TestDNSTTL(t *testing.T) {
	d := startDnsmasq(t, 42, "127.0.0.1 lib.test\n", "_grpc._tcp.lib.test,lib.test,9001,0,10")
	for _, src := range []*DNS{{Name: "lib.test", Port: 1}, {Name: "_grpc._tcp.lib.test", SRV: true}} {
		_, ttl, err := src.lookup(context.Background(), d.addr)
		if err != nil || ttl != 42*time.Second {
			t.Errorf("%s: TTL %v (%v), want 42s", src.Name, ttl, err)
		}
	}
}

// TestDNSSRV: SRV records give the targets, ports and weights (the lowest
// priority only); a new record set (dnsmasq restarted with it) is
// followed.
func TestDNSSRV(t *testing.T) {
	d := startDnsmasq(t, 1, "127.0.0.1 a.lib.test\n127.0.0.2 b.lib.test\n127.0.0.3 c.lib.test\n",
		"_grpc._tcp.lib.test,a.lib.test,9001,0,10",
		"_grpc._tcp.lib.test,b.lib.test,9002,0,30",
		"_grpc._tcp.lib.test,c.lib.test,9003,1,50") // a backup: a higher priority value
	src := &DNS{Name: "_grpc._tcp.lib.test", SRV: true, Resolver: d.addr, Timeout: 200 * time.Millisecond}
	w := watch(t, src, Options{})
	w.want(t, "127.0.0.1:9001/10", "127.0.0.2:9002/30")

	d.stop()
	d.configure(1, "_grpc._tcp.lib.test,b.lib.test,9002,0,30", "_grpc._tcp.lib.test,c.lib.test,9003,0,5")
	d.start()
	w.want(t, "127.0.0.2:9002/30", "127.0.0.3:9003/5")
}
