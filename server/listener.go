package server

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener bounds open connections. Past the bound it does not leave
// the client hanging in the accept queue: it answers an HTTP 503 and closes,
// which HTTP/1.1 clients report as such and HTTP/2 clients as unavailable.
type limitListener struct {
	net.Listener
	max    int64
	active atomic.Int64
}

const tooManyConnections = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: 21\r\n\r\ntoo many connections\n"

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.active.Add(1) > l.max {
			l.active.Add(-1)
			go refuse(c)
			continue
		}
		return &limitedConn{Conn: c, release: func() { l.active.Add(-1) }}, nil
	}
}

func refuse(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(time.Second))
	_, _ = c.Write([]byte(tooManyConnections))
	_ = c.Close()
}

type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
