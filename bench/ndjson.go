package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	riskv1 "github.com/riskd/riskd/api/gen/risk/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// MarshalEvent returns ev in the contract's JSON form (protojson,
// lowerCamelCase) on one line. protojson varies its whitespace between
// builds on purpose; the line is compacted so that the bytes depend on the
// event alone.
func MarshalEvent(ev *riskv1.Event) ([]byte, error) {
	b, err := protojson.Marshal(ev)
	if err != nil {
		return nil, fmt.Errorf("bench: marshal event %s: %w", ev.GetEventId(), err)
	}
	var out bytes.Buffer
	out.Grow(len(b))
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("bench: compact event %s: %w", ev.GetEventId(), err)
	}
	return out.Bytes(), nil
}

// WriteNDJSON drains src, writing each event as one JSON line to events and
// its label as one JSON line to labels (either writer may be nil to skip
// it). It returns the number of events written.
func WriteNDJSON(src Source, events, labels io.Writer) (int, error) {
	var ew, lw *bufio.Writer
	if events != nil {
		ew = bufio.NewWriterSize(events, 1<<16)
	}
	if labels != nil {
		lw = bufio.NewWriterSize(labels, 1<<16)
	}
	le := json.NewEncoder(lw)
	n := 0
	for {
		ev, l, ok := src.Next()
		if !ok {
			break
		}
		if ew != nil {
			b, err := MarshalEvent(ev)
			if err != nil {
				return n, err
			}
			b = append(b, '\n')
			if _, err := ew.Write(b); err != nil {
				return n, fmt.Errorf("bench: write events: %w", err)
			}
		}
		if lw != nil {
			if err := le.Encode(l); err != nil {
				return n, fmt.Errorf("bench: write labels: %w", err)
			}
		}
		n++
	}
	if ew != nil {
		if err := ew.Flush(); err != nil {
			return n, fmt.Errorf("bench: write events: %w", err)
		}
	}
	if lw != nil {
		if err := lw.Flush(); err != nil {
			return n, fmt.Errorf("bench: write labels: %w", err)
		}
	}
	return n, nil
}

// ReadLabels reads a labels file written by WriteNDJSON into a map by event
// id.
func ReadLabels(r io.Reader) (map[string]Label, error) {
	out := map[string]Label{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l Label
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("bench: labels line %d: %w", line, err)
		}
		if l.EventID == "" {
			return nil, fmt.Errorf("bench: labels line %d: no event_id", line)
		}
		out[l.EventID] = l
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("bench: read labels: %w", err)
	}
	return out, nil
}

// StreamNDJSON is WriteNDJSON for a paced stream: each line is written as
// soon as its event is due, unbuffered, so that a reader sees live traffic.
// It stops at the end of the stream or when ctx is done.
func StreamNDJSON(ctx context.Context, p *Pacer, events, labels io.Writer) (int, error) {
	n := 0
	for {
		ev, l, err := p.Next(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if events != nil {
			b, err := MarshalEvent(ev)
			if err != nil {
				return n, err
			}
			if _, err := events.Write(append(b, '\n')); err != nil {
				return n, fmt.Errorf("bench: write events: %w", err)
			}
		}
		if labels != nil {
			b, _ := json.Marshal(l)
			if _, err := labels.Write(append(b, '\n')); err != nil {
				return n, fmt.Errorf("bench: write labels: %w", err)
			}
		}
		n++
	}
}

// ParseMix parses "scenario=fraction,scenario=fraction" into a Mix.
func ParseMix(s string) (map[Scenario]float64, error) {
	out := map[Scenario]float64{}
	for _, kv := range strings.Split(s, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("bench: mix entry %q: want scenario=fraction", kv)
		}
		name := Scenario(strings.TrimSpace(k))
		if _, ok := Lookup(name); !ok {
			return nil, fmt.Errorf("bench: mix entry %q: unknown scenario", kv)
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("bench: mix entry %q: fraction must be a non-negative number", kv)
		}
		out[name] = f
	}
	return out, nil
}
