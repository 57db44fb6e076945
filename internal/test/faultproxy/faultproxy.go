// Package faultproxy is a TCP proxy for fault tests: it sits between a client
// (apply) and a server (MariaDB) and cuts connections on demand or at random
// moments, including the worst one for a database client: right after a
// statement reached the server, before its reply reaches the client, so the
// client cannot know whether it ran.
package faultproxy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"net"
	"sync"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// Policy decides about random cuts. The zero value never cuts.
type Policy struct {
	// Prob is the chance, per chunk forwarded in either direction, that the
	// connection is cut there.
	Prob float64
	// Spare is how many chunks of each connection pass untouched first, so
	// that handshakes mostly succeed and cuts land on real statements.
	Spare int
	// Seed makes the choice of cuts repeatable: connection i of the proxy
	// draws from its own source seeded with Seed+i.
	Seed int64
}

// Proxy forwards connections from its loopback listener to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	conns   map[*link]struct{}
	policy  Policy
	refuse  bool
	cutOn   []byte // CutOn's pattern, until a chunk to the server holds it
	cutSkip int    // chunks holding cutOn to let through first
	garble  []byte // Garble's pattern
	cuts    int
	blind   int // cuts right after forwarding a chunk to the server
	accepts int
	closed  bool
	wg      sync.WaitGroup
}

type link struct {
	client, server net.Conn
	chunks         int // chunks forwarded so far, both directions
	halves         int // directions that ended with a clean EOF
	rng            *rand.Rand
	dying          bool // a cut is decided: forward nothing more
	once           sync.Once
}

// Start listens on a free loopback port and forwards to target.
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy listen: %w", err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[*link]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients connect to instead of the target.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetPolicy replaces the random-cut policy; it applies to open connections
// too (which keep drawing from their own sources).
func (p *Proxy) SetPolicy(pol Policy) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.policy = pol
}

// Refuse makes the proxy drop new connections at once (true) or forward
// them again (false), like a server that is down.
func (p *Proxy) Refuse(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// CutOn arms a one-shot cut: the first chunk towards the server that
// contains pattern is not forwarded, and its connection is cut. It lets a
// test hit one chosen statement, whenever the client sends it.
func (p *Proxy) CutOn(pattern string) { p.CutOnNth(pattern, 1) }

// CutOnNth is CutOn for the nth chunk towards the server that contains
// pattern (n >= 1): the ones before pass.
func (p *Proxy) CutOnNth(pattern string, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutOn, p.cutSkip = []byte(pattern), n-1
}

// Garble makes every chunk towards the server that contains pattern reach
// it with the pattern's first byte replaced by 'X', so the server refuses
// that statement with a syntax error and the connection lives on: a server
// that does not take one statement. "" stops it.
func (p *Proxy) Garble(pattern string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.garble = []byte(pattern)
}

// CutAll resets every open connection.
func (p *Proxy) CutAll() int {
	p.mu.Lock()
	ls := make([]*link, 0, len(p.conns))
	for l := range p.conns {
		ls = append(ls, l)
	}
	p.mu.Unlock()
	for _, l := range ls {
		p.cut(l)
	}
	return len(ls)
}

// Cuts is how many connections the proxy has cut so far.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// BlindCuts is how many cuts came right after a chunk reached the server,
// so that the client cannot know the outcome of what it sent.
func (p *Proxy) BlindCuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.blind
}

// Accepts is how many connections the proxy has forwarded so far.
func (p *Proxy) Accepts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepts
}

// Close stops listening, cuts every connection and waits for the
// forwarding goroutines to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.CutAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.mu.Lock()
		refuse, closed := p.refuse, p.closed
		p.mu.Unlock()
		if refuse || closed {
			reset(c)
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			reset(c)
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		l.rng = rand.New(rand.NewSource(p.policy.Seed + int64(p.accepts)))
		p.conns[l] = struct{}{}
		p.accepts++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, c, s, true)
		go p.pipe(l, s, c, false)
	}
}

// pipe copies src to dst chunk by chunk, asking the policy before and
// after each chunk whether to cut.
func (p *Proxy) pipe(l *link, src, dst net.Conn, toServer bool) {
	defer p.wg.Done()
	buf := make([]byte, 32*1024)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			before, after := p.decide(l, toServer, buf[:n])
			if before {
				p.cut(l)
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				p.cut(l)
				return
			}
			if after {
				p.cut(l)
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				p.cut(l)
				return
			}
			// A clean half-close: pass it on and let the other direction finish.
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			p.halfClosed(l)
			return
		}
	}
}

// decide returns whether to cut before forwarding the chunk, or right after
// it: CutOn's pattern first, then the random policy, under which a chunk
// towards the server is forwarded before the cut half the time: the
// statement runs, its reply is lost.
func (p *Proxy) decide(l *link, toServer bool, chunk []byte) (before, after bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l.chunks++
	if l.dying {
		return true, false
	}
	if toServer && len(p.garble) > 0 {
		if i := bytes.Index(chunk, p.garble); i >= 0 {
			chunk[i] = 'X'
		}
	}
	if toServer && p.cutOn != nil && bytes.Contains(chunk, p.cutOn) {
		if p.cutSkip > 0 {
			p.cutSkip--
		} else {
			p.cutOn = nil
			return true, false
		}
	}
	if p.policy.Prob <= 0 || l.chunks <= p.policy.Spare || l.rng.Float64() >= p.policy.Prob {
		return false, false
	}
	if toServer && l.rng.Intn(2) == 0 {
		// The reply must not slip through the other direction before the cut.
		l.dying = true
		p.blind++
		return false, true
	}
	return true, false
}

func (p *Proxy) cut(l *link) {
	l.once.Do(func() {
		// Counted before the reset: a client that saw its connection die
		// must see the cut in Cuts too.
		p.mu.Lock()
		if _, ok := p.conns[l]; ok {
			delete(p.conns, l)
			p.cuts++
		}
		p.mu.Unlock()
		reset(l.client)
		reset(l.server)
	})
}

// halfClosed notes one direction's clean end; once both have ended the link
// is closed and forgotten without counting as a cut.
func (p *Proxy) halfClosed(l *link) {
	p.mu.Lock()
	l.halves++
	both := l.halves == 2
	if both {
		delete(p.conns, l)
	}
	p.mu.Unlock()
	if both {
		l.once.Do(func() {
			l.client.Close()
			l.server.Close()
		})
	}
}

// reset closes a connection with RST rather than FIN, as a dead peer or a
// middlebox dropping state would.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// Between starts a proxy in front of the server of a go-sql-driver DSN, for
// the test's duration, and returns it with the DSN's config pointing at it.
func Between(t testing.TB, dsn string) (*Proxy, *mysql.Config) {
	t.Helper()
	cfg, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start(cfg.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	cfg.Addr = p.Addr()
	return p, cfg
}
