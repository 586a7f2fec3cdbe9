// Package e2e drives the real stella binary the way a user does: separate
// processes sharing one ledger, kill -9, exit codes, stdout/stderr.
package e2e

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/stellaops/stella/internal/corpus"
	"github.com/stellaops/stella/pkg/exportapi"
)

var stellaBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stella-e2e-")
	if err != nil {
		panic(err)
	}
	stellaBin = filepath.Join(dir, "stella")
	out, err := exec.Command("go", "build", "-o", stellaBin, "../../cmd/stella").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build stella: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type env struct {
	t    *testing.T
	data string
}

func newEnv(t *testing.T) *env { return &env{t: t, data: t.TempDir()} }

func (e *env) cmd(args ...string) *exec.Cmd {
	c := exec.Command(stellaBin, append([]string{"export", "--data-dir", e.data}, args...)...)
	c.Env = append(os.Environ(), "STELLA_CONFIG=", "XDG_CONFIG_HOME="+filepath.Join(e.data, "cfg"))
	return c
}

// run runs stella and returns stdout, stderr and the exit code.
func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	c := e.cmd(args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		e.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

func testdata(t *testing.T, rel string) string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "testdata", rel))
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func decodeRun(t *testing.T, s string) exportapi.Run {
	t.Helper()
	var r exportapi.Run
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		t.Fatalf("not a run: %v\n%s", err, s)
	}
	return r
}

// bigArchive writes n generated documents into one .tar.zst source: a run
// over it reads for a second or more (one decompressing reader), and making
// it costs no per-file system calls.
func bigArchive(t *testing.T, n int) string {
	t.Helper()
	seeds, err := corpus.Seeds(testdata(t, "evidence/osv"))
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "big.tar.zst")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	_, err = corpus.GenerateTo(seeds, "E2E", n, 0, func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = zw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExitCodes(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"run", "submit", "--profile", "nope", "--source", "s=" + testdata(t, "evidence/policy")}, 4, "ERR_EXPORT_PROFILE_NOT_FOUND"},
		{[]string{"run", "show", "no-such-run"}, 4, "ERR_EXPORT_RUN_NOT_FOUND"},
		{[]string{"run", "submit", "--profile", "json:raw", "--source", "s=/does/not/exist"}, 2, "ERR_EXPORT_INVALID_INPUT"},
		{[]string{"run", "submit", "--profile", "json:raw", "--bogus"}, 2, "unknown flag"},
		{[]string{"run", "submit", "--profile", "json:raw", "--source", "s=" + testdata(t, "evidence/osv/golang-vulndb/t0"), "--selector", "ecosystem=npm"}, 2, "ERR_EXPORT_EMPTY"},
		{[]string{"verify", "/does/not/exist"}, 4, "ERR_EXPORT_RUN_NOT_FOUND"},
	}
	for _, c := range cases {
		_, stderr, code := e.run(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, stderr, c.want)
		}
	}
}

func TestSubmitShowDownloadVerify(t *testing.T) {
	e := newEnv(t)
	out, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"))
	if code != 0 {
		t.Fatalf("submit: exit %d: %s", code, stderr)
	}
	run := decodeRun(t, out)
	if run.State != exportapi.StateSucceeded || len(run.Artifacts) == 0 {
		t.Fatalf("run %+v", run)
	}
	dl := t.TempDir()
	if _, stderr, code := e.run("download", run.ID, "--output", dl); code != 0 {
		t.Fatalf("download: exit %d: %s", code, stderr)
	}
	got := filepath.Join(dl, run.Artifacts[0].Name)
	if _, stderr, code := e.run("verify", got); code != 0 {
		t.Fatalf("verify of the download: exit %d: %s", code, stderr)
	}
	if _, stderr, code := e.run("verify", run.ID); code != 0 {
		t.Fatalf("verify by run id: exit %d: %s", code, stderr)
	}
	// Tamper with the stored artifact: flip one byte, then truncate.
	stored := run.Artifacts[0].Path
	b, _ := os.ReadFile(stored)
	b[len(b)/2] ^= 0x40
	os.WriteFile(stored, b, 0o644)
	out, stderr, code = e.run("download", run.ID, "--output", t.TempDir())
	if code != 3 || !strings.Contains(out+stderr, "sha256") || !strings.Contains(stderr, "ERR_EXPORT_VERIFY") {
		t.Fatalf("tampered download: exit %d\n%s\n%s", code, out, stderr)
	}
	if _, _, code := e.run("verify", stored); code != 3 {
		t.Fatalf("verify of a tampered bundle: exit %d, want 3", code)
	}
	os.WriteFile(stored, b[:len(b)/3], 0o644)
	dir := t.TempDir()
	_, stderr, code = e.run("download", run.ID, "--output", dir)
	if code != 3 || !strings.Contains(stderr, "truncated") {
		t.Fatalf("truncated download: exit %d: %s", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("a failed download left %v behind", ents)
	}
}

// TestKillMidRun kills a run with SIGKILL while it writes, then checks the
// ledger marks it failed with a reason, no artifact looks complete, and the
// ledger still works for other runs.
func TestKillMidRun(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t)
	// Big enough that the run is still reading when the kill lands (the
	// kill follows the first progress event; one archive of 100,000
	// documents takes seconds to read).
	big := bigArchive(t, 100000)
	// A finished run first: it must survive untouched.
	out, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0"))
	if code != 0 {
		t.Fatalf("first run: %s", stderr)
	}
	before := decodeRun(t, out)

	c := e.cmd("run", "submit", "--profile", "json:raw", "--source", "big="+big, "--watch")
	stdout, _ := c.StdoutPipe()
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until it has made progress (NDJSON events on stdout), then kill it.
	sc := bufio.NewScanner(stdout)
	var runID string
	for sc.Scan() {
		var ev exportapi.Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Type == exportapi.EventProgress && ev.ItemsDone >= 64 {
			runID = ev.RunID
			break
		}
	}
	if runID == "" {
		c.Process.Kill()
		t.Fatal("no progress event seen")
	}
	c.Process.Signal(syscall.SIGKILL)
	c.Wait()

	out, stderr, code = e.run("run", "show", runID)
	if code != 0 {
		t.Fatalf("run show after the kill: exit %d: %s", code, stderr)
	}
	killed := decodeRun(t, out)
	if killed.State != exportapi.StateFailed || killed.ErrorType != "ERR_EXPORT_INTERNAL" || !strings.Contains(killed.ErrorMessage, "stopped before the run finished") {
		t.Fatalf("killed run: state %s type %s message %q", killed.State, killed.ErrorType, killed.ErrorMessage)
	}
	complete, _ := filepath.Glob(filepath.Join(e.data, "runs", runID, "*.tar.zst"))
	if len(complete) != 0 {
		t.Fatalf("a killed run left a complete-looking bundle: %v", complete)
	}
	// Its scratch (sort runs, staged files) went when it was found dead,
	// and with it the folder.
	if _, err := os.Stat(filepath.Join(e.data, "runs", runID)); !os.IsNotExist(err) {
		left, _ := filepath.Glob(filepath.Join(e.data, "runs", runID, "*"))
		t.Fatalf("a killed run's folder is still there (%v): %v", err, left)
	}
	// Its event log ends with run.failed, seqs contiguous.
	out, _, _ = e.run("run", "show", runID, "--events")
	var shown struct{ Events []exportapi.Event }
	json.Unmarshal([]byte(out), &shown)
	if n := len(shown.Events); n == 0 || shown.Events[n-1].Type != exportapi.EventFailed {
		t.Fatalf("event log does not end with run.failed: %d events", n)
	}
	for i, ev := range shown.Events {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	out, _, _ = e.run("run", "show", before.ID)
	if after := decodeRun(t, out); after.State != exportapi.StateSucceeded || after.Artifacts[0].SHA256 != before.Artifacts[0].SHA256 {
		t.Fatalf("the earlier run changed: %+v", after)
	}
	if _, stderr, code := e.run("run", "submit", "--profile", "json:raw", "--source", "go="+testdata(t, "evidence/osv/golang-vulndb/t0")); code != 0 {
		t.Fatalf("a run after the kill: %s", stderr)
	}
}

// TestWatchFromSecondProcess follows a run from another process while it
// executes; neither process may fail on the ledger's file lock.
func TestWatchFromSecondProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newEnv(t)
	big := bigArchive(t, 100000)
	sub := e.cmd("run", "submit", "--profile", "json:raw", "--source", "big="+big, "--watch")
	stdout, _ := sub.StdoutPipe()
	var subErr bytes.Buffer
	sub.Stderr = &subErr
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var runID string
	for sc.Scan() {
		var ev exportapi.Event
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.RunID != "" {
			runID = ev.RunID
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if runID == "" {
		t.Fatal("no event from submit --watch")
	}
	// Meanwhile, other processes list and show the ledger.
	for i := 0; i < 3; i++ {
		if _, stderr, code := e.run("run", "list"); code != 0 {
			t.Fatalf("run list during a run: exit %d: %s", code, stderr)
		}
	}
	out, stderr, code := e.run("run", "watch", runID)
	if code != 0 {
		t.Fatalf("watch: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var last exportapi.Event
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Type != exportapi.EventCompleted {
		t.Fatalf("watch did not end with run.completed: %q", lines[len(lines)-1])
	}
	if err := sub.Wait(); err != nil {
		t.Fatalf("submit: %v: %s", err, subErr.String())
	}
	if strings.Contains(subErr.String(), "timeout") {
		t.Fatalf("lock timeout: %s", subErr.String())
	}
}

func TestWatchFailedRunExitsNonZero(t *testing.T) {
	e := newEnv(t)
	_, _, code := e.run("run", "submit", "--profile", "json:raw", "--watch", "--source", "lint="+testdata(t, "evidence/osv/osv-schema-testdata"))
	if code != 2 {
		t.Fatalf("submit --watch of an invalid corpus: exit %d, want 2", code)
	}
	out, _, _ := e.run("run", "list")
	var l struct{ Runs []exportapi.Run }
	json.Unmarshal([]byte(out), &l)
	if len(l.Runs) != 1 {
		t.Fatalf("runs %+v", l.Runs)
	}
	if _, _, code := e.run("run", "watch", l.Runs[0].ID); code != 2 {
		t.Fatalf("watch of a failed run: exit %d, want 2", code)
	}
}
