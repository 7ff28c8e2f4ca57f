package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rosettagw/rosetta/bench/internal/machine"
)

// proc is one process of the soak that may be killed and started again
// with the same command line: an upstream replica, Redis, Mosquitto or the
// gateway. Its output is appended to one log file across restarts.
type proc struct {
	name string
	addr string // host:port it listens on
	log  string
	bin  string
	args []string
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited
}

// newProc describes a process; start runs it.
func newProc(dir, name, addr, bin string, args ...string) *proc {
	return &proc{name: name, addr: addr, log: dir + "/" + name + ".log", bin: bin, args: args}
}

// start runs the process and waits until its address accepts connections.
func (p *proc) start() error {
	out, err := os.OpenFile(p.log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer out.Close() // the child holds its own descriptor
	p.cmd = exec.Command(p.bin, p.args...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.done = make(chan struct{})
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(p.cmd, p.done)
	switch err := machine.WaitListening(p.addr, p.done, 30*time.Second); {
	case errors.Is(err, machine.ErrExited):
		return fmt.Errorf("%s exited before listening (%v); see %s", p.name, p.cmd.ProcessState, p.log)
	case err != nil:
		p.kill(syscall.SIGKILL)
		return fmt.Errorf("%s %w; see %s", p.name, err, p.log)
	}
	return nil
}

// kill sends sig and waits for the process to exit, sending SIGKILL after
// ten seconds.
func (p *proc) kill(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// pid returns the running process's id, 0 when it is not running.
func (p *proc) pid() int {
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// rssBytes reads VmRSS from /proc/PID/status.
func rssBytes(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// openFiles counts the entries of /proc/PID/fd.
func openFiles(pid int) (int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(ents), err
}
