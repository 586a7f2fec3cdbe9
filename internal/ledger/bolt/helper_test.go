package bolt_test

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tests that need a second process re-execute this test binary running
// only TestHelperProcess, with STELLA_BOLT_HELPER saying what to do.
const envHelper = "STELLA_BOLT_HELPER"

func TestHelperProcess(t *testing.T) {
	switch os.Getenv(envHelper) {
	case "":
		t.Skip("helper process of the multi-process tests; runs only when re-executed by them")
	case "hammer":
		helperHammer(t)
	case "crash":
		helperCrash(t)
	default:
		t.Fatalf("unknown helper %q", os.Getenv(envHelper))
	}
}

type helper struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, line by line; closed at EOF
	mu    sync.Mutex
	out   bytes.Buffer // everything the helper printed
	done  chan error
}

func startHelper(t *testing.T, mode string, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.timeout=5m")
	cmd.Env = append(append(os.Environ(), envHelper+"="+mode, "TMPDIR="+t.TempDir()), env...)
	h := &helper{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = h
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.Write([]byte(sc.Text() + "\n"))
			select {
			case h.lines <- sc.Text():
			default:
			}
		}
		close(h.lines)
		h.done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return h
}

func (h *helper) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.Write(p)
}

func (h *helper) output() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.out.String()
}

// waitLine waits for a line starting with prefix and returns it.
func (h *helper) waitLine(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-h.lines:
			if !ok {
				t.Fatalf("helper ended before printing %q:\n%s", prefix, h.output())
			}
			if strings.HasPrefix(line, prefix) {
				return line
			}
		case <-timeout:
			t.Fatalf("helper did not print %q within 2m:\n%s", prefix, h.output())
		}
	}
}

func (h *helper) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(3 * time.Minute):
		h.cmd.Process.Kill()
		t.Fatalf("helper did not end:\n%s", h.output())
		return nil
	}
}
