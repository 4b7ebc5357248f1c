// Package logbuf is an in-memory log destination that goroutines share: the
// tests hand it to a slog handler or a child process's stderr and read what
// was logged while the writers may still be running.
package logbuf
