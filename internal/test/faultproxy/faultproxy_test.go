package faultproxy

import (
	"bufio"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// lineServer answers each line "x" with "echo x" and remembers what it got.
type lineServer struct {
	ln  net.Listener
	mu  sync.Mutex
	got []string
}

func startLineServer(t *testing.T) *lineServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &lineServer{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					s.mu.Lock()
					s.got = append(s.got, strings.TrimSpace(line))
					s.mu.Unlock()
					if _, err := io.WriteString(c, "echo "+line); err != nil {
						return
					}
				}
			}()
		}
	}()
	return s
}

func (s *lineServer) received() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func start(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// roundTrip sends one line and reads the answer.
func roundTrip(c net.Conn, r *bufio.Reader, msg string) (string, error) {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return "", err
	}
	line, err := r.ReadString('\n')
	return strings.TrimSpace(line), err
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestForwardsUntouchedByDefault(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	c, r := dial(t, p)
	for i := 0; i < 200; i++ {
		got, err := roundTrip(c, r, "m")
		if err != nil || got != "echo m" {
			t.Fatalf("round trip %d: %q, %v", i, got, err)
		}
	}
	if p.Cuts() != 0 || p.Accepts() != 1 {
		t.Fatalf("cuts %d accepts %d, want 0 and 1", p.Cuts(), p.Accepts())
	}
}

func TestCutAll(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	c1, r1 := dial(t, p)
	c2, r2 := dial(t, p)
	for _, cr := range []struct {
		c net.Conn
		r *bufio.Reader
	}{{c1, r1}, {c2, r2}} {
		if _, err := roundTrip(cr.c, cr.r, "hi"); err != nil {
			t.Fatal(err)
		}
	}
	if n := p.CutAll(); n != 2 {
		t.Fatalf("CutAll cut %d, want 2", n)
	}
	if _, err := roundTrip(c1, r1, "after"); err == nil {
		t.Fatal("cut connection still answers")
	}
	c3, r3 := dial(t, p)
	if got, err := roundTrip(c3, r3, "new"); err != nil || got != "echo new" {
		t.Fatalf("new connection after CutAll: %q, %v", got, err)
	}
	if p.Cuts() != 2 {
		t.Fatalf("Cuts = %d, want 2", p.Cuts())
	}
}

// TestCutOn: the first line holding the pattern never reaches the server
// and its connection is cut; the cut is used up, so a later one passes.
func TestCutOn(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	p.CutOn("SET x")
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "SELECT 1"); err != nil || got != "echo SELECT 1" {
		t.Fatalf("a line without the pattern: %q, %v", got, err)
	}
	if got, err := roundTrip(c, r, "SET x = 1"); err == nil {
		t.Fatalf("the line with the pattern got an answer %q", got)
	}
	c2, r2 := dial(t, p)
	if got, err := roundTrip(c2, r2, "SET x = 2"); err != nil || got != "echo SET x = 2" {
		t.Fatalf("the pattern again, after the one cut: %q, %v", got, err)
	}
	if got := s.received(); strings.Join(got, ",") != "SELECT 1,SET x = 2" {
		t.Errorf("server received %q, want the cut line missing", got)
	}
	if p.Cuts() != 1 {
		t.Errorf("Cuts = %d, want 1", p.Cuts())
	}
}

// TestCutOnNth: the chunks holding the pattern before the nth pass; the
// nth is cut; a garbled pattern reaches the server changed.
func TestCutOnNth(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	p.CutOnNth("SET x", 2)
	c, r := dial(t, p)
	if got, err := roundTrip(c, r, "SET x = 1"); err != nil || got != "echo SET x = 1" {
		t.Fatalf("the first line with the pattern: %q, %v", got, err)
	}
	if got, err := roundTrip(c, r, "SET x = 2"); err == nil {
		t.Fatalf("the second line with the pattern got an answer %q", got)
	}
	p.Garble("SET y")
	c2, r2 := dial(t, p)
	if got, err := roundTrip(c2, r2, "SET y = 3"); err != nil || got != "echo XET y = 3" {
		t.Fatalf("a garbled line: %q, %v", got, err)
	}
	if p.Cuts() != 1 {
		t.Errorf("Cuts = %d, want 1", p.Cuts())
	}
}

// TestCutAfterForward: with every chunk cut, some statements reach the
// server and still lose their answer: the outcome-unknown case.
func TestCutAfterForward(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	p.SetPolicy(Policy{Prob: 1, Seed: 7})
	const n = 40
	for i := 0; i < n; i++ {
		c, r := dial(t, p)
		if got, err := roundTrip(c, r, "stmt"); err == nil {
			t.Fatalf("connection %d got an answer %q through a cut", i, got)
		}
		c.Close()
	}
	p.Close() // waits for every forwarding goroutine
	got := len(s.received())
	if got == 0 || got == n {
		t.Fatalf("server received %d of %d statements; want some forwarded-then-cut and some cut before", got, n)
	}
	if p.BlindCuts() != got {
		t.Fatalf("BlindCuts = %d, but the server received %d statements whose answers were cut", p.BlindCuts(), got)
	}
	if p.Cuts() != n {
		t.Fatalf("Cuts = %d, want %d", p.Cuts(), n)
	}
}

func TestSpareChunks(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	p.SetPolicy(Policy{Prob: 1, Spare: 4, Seed: 1})
	c, r := dial(t, p)
	for i := 0; i < 2; i++ { // two round trips = four chunks
		if got, err := roundTrip(c, r, "ok"); err != nil || got != "echo ok" {
			t.Fatalf("spared round trip %d: %q, %v", i, got, err)
		}
	}
	if _, err := roundTrip(c, r, "cut"); err == nil {
		t.Fatal("third round trip was not cut")
	}
}

func TestRandomCutsAreRepeatable(t *testing.T) {
	run := func() []int {
		s := startLineServer(t)
		p := start(t, s.ln.Addr().String())
		p.SetPolicy(Policy{Prob: 0.2, Seed: 42})
		var lens []int
		for i := 0; i < 20; i++ {
			c, r := dial(t, p)
			n := 0
			for ; n < 50; n++ {
				if _, err := roundTrip(c, r, "x"); err != nil {
					break
				}
			}
			c.Close()
			lens = append(lens, n)
		}
		return lens
	}
	a, b := run(), run()
	cut := 0
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("same seed, different cuts: %v vs %v", a, b)
		}
		if a[i] < 50 {
			cut++
		}
	}
	if cut == 0 {
		t.Fatalf("no connection was cut: %v", a)
	}
}

// answers reports whether one round trip through the proxy succeeds; a
// reset may already hit the dial.
func answers(p *Proxy) bool {
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		return false
	}
	defer c.Close()
	_, err = roundTrip(c, bufio.NewReader(c), "x")
	return err == nil
}

func TestRefuse(t *testing.T) {
	s := startLineServer(t)
	p := start(t, s.ln.Addr().String())
	p.Refuse(true)
	if answers(p) {
		t.Fatal("refusing proxy answered")
	}
	p.Refuse(false)
	c2, r2 := dial(t, p)
	if got, err := roundTrip(c2, r2, "x"); err != nil || got != "echo x" {
		t.Fatalf("after Refuse(false): %q, %v", got, err)
	}
}

func TestTargetDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := start(t, addr)
	if answers(p) {
		t.Fatal("answer from a proxy whose target is down")
	}
}
