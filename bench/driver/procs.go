package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rosettagw/rosetta/bench/internal/machine"
)

// process is one server the driver started: a proxy or the upstream.
type process struct {
	name string
	addr string // host:port it listens on
	log  string // file holding its standard output and error
	cmd  *exec.Cmd
	done chan struct{} // closed once it has exited
}

// startUpstream starts the bench upstream on a free loopback port.
func startUpstream(cfg config) (*process, error) {
	addr, err := machine.FreeAddr()
	if err != nil {
		return nil, err
	}
	return startProcess(cfg.work, "upstream", addr, filepath.Join(cfg.bin, "upstream"), "-listen", addr)
}

// startProcess runs bin with args, its output going to a log file in dir,
// and waits until addr accepts TCP connections.
func startProcess(dir, name, addr, bin string, args ...string) (*process, error) {
	p := &process{name: name, addr: addr, log: dir + "/" + name + ".log", done: make(chan struct{})}
	out, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child holds its own descriptor
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	switch err := machine.WaitListening(addr, p.done, 20*time.Second); {
	case errors.Is(err, machine.ErrExited):
		return nil, fmt.Errorf("%s exited before listening (%v); see %s", name, p.cmd.ProcessState, p.log)
	case err != nil:
		p.stop()
		return nil, fmt.Errorf("%s %w; see %s", name, err, p.log)
	}
	return p, nil
}

// stop sends SIGTERM and waits for the process to exit, killing it after
// five seconds.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuTicks returns the process's user+system CPU time in clock ticks, fields
// 14 and 15 of /proc/PID/stat.
func (p *process) cpuTicks() (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces; fields resume after ')'.
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s: short /proc stat line", p.name)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: bad /proc stat line", p.name)
	}
	return utime + stime, nil
}

// goneAway marks log lines about a client or request that went away, which
// every server logs when wrk closes its connections with requests in flight
// at the end of a run.
var goneAway = []string{"broken pipe", "context canceled", "connection reset by peer"}

// complaints reads the process's log, skipping its start-up line and INFO
// records, text or JSON (access log lines, "serving"). It returns how many
// of the other lines are about clients that went away, how many are not,
// and at most max of the latter.
func (p *process) complaints(max int) (gone, other int, examples []string) {
	f, err := os.Open(p.log)
	if err != nil {
		return 0, 1, []string{err.Error()}
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "listening on ") || strings.Contains(l, "level=INFO") || strings.Contains(l, `"level":"INFO"`):
		case slices.ContainsFunc(goneAway, func(s string) bool { return strings.Contains(l, s) }):
			gone++
		default:
			other++
			if len(examples) < max {
				examples = append(examples, l)
			}
		}
	}
	return gone, other, examples
}

// clockTicks returns the kernel's clock ticks per second (getconf CLK_TCK).
func clockTicks() (float64, error) {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 0, fmt.Errorf("getconf CLK_TCK: %w", err)
	}
	return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
}
