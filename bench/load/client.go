package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/riskd/riskd/api/gen/risk/v1/riskv1connect"
)

// ErrProtocol is returned for a protocol name other than connect, grpc and
// grpcweb.
var ErrProtocol = errors.New("load: unknown protocol (want connect, grpc or grpcweb)")

// ClientOptions configures NewClient. The zero value is a Connect-protocol,
// protobuf, HTTP/1.1 client of http://127.0.0.1:8080 without a token.
type ClientOptions struct {
	// BaseURL of the server. Default http://127.0.0.1:8080.
	BaseURL string
	// Protocol: connect (default), grpc or grpcweb.
	Protocol string
	// JSON uses the Connect JSON codec instead of protobuf.
	JSON bool
	// HTTP2 speaks h2c (HTTP/2 without TLS). gRPC always does; Connect and
	// gRPC-Web default to HTTP/1.1, the cheapest transport here.
	HTTP2 bool
	// Token is sent as "Authorization: Bearer <Token>" when set.
	Token string
	// Conns is how many idle HTTP/1.1 connections to keep to the server;
	// set it to the run's concurrency so that connections are reused, not
	// redialled. Default 256.
	Conns int
}

// Client is a RiskService client with the transport it was built for.
type Client struct {
	riskv1connect.RiskServiceClient
	URL       string
	Transport Transport
	http      *http.Client
}

// NewClient builds a client for o.
func NewClient(o ClientOptions) (*Client, error) {
	if o.BaseURL == "" {
		o.BaseURL = "http://127.0.0.1:8080"
	}
	if o.Protocol == "" {
		o.Protocol = "connect"
	}
	if o.Conns <= 0 {
		o.Conns = 256
	}
	var opts []connect.ClientOption
	switch o.Protocol {
	case "connect":
	case "grpc":
		opts = append(opts, connect.WithGRPC())
		o.HTTP2 = true
	case "grpcweb":
		opts = append(opts, connect.WithGRPCWeb())
	default:
		return nil, fmt.Errorf("%w: %q", ErrProtocol, o.Protocol)
	}
	tr := Transport{Protocol: o.Protocol, Codec: "proto", HTTP: "HTTP/1.1"}
	if o.JSON {
		opts = append(opts, connect.WithProtoJSON())
		tr.Codec = "json"
	}
	if o.Token != "" {
		opts = append(opts, connect.WithInterceptors(bearer(o.Token)))
	}
	var protocols http.Protocols
	if o.HTTP2 {
		protocols.SetUnencryptedHTTP2(true)
		tr.HTTP = "h2c"
	} else {
		protocols.SetHTTP1(true)
	}
	hc := &http.Client{Transport: &http.Transport{
		Protocols:           &protocols,
		MaxIdleConns:        o.Conns,
		MaxIdleConnsPerHost: o.Conns,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}}
	base := strings.TrimRight(o.BaseURL, "/")
	return &Client{
		RiskServiceClient: riskv1connect.NewRiskServiceClient(hc, base, opts...),
		URL:               base,
		Transport:         tr,
		http:              hc,
	}, nil
}

// Close drops the client's idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// bearer sends "Authorization: Bearer <token>" on every call, unary
// (Evaluate) and client-streaming (Ingest, for Populate).
type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	v := "Bearer " + string(b)
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", v)
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	v := "Bearer " + string(b)
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		conn := next(ctx, spec)
		conn.RequestHeader().Set("Authorization", v)
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// ServiceToken reads the "service" token from dataDir/credentials.json, the
// file riskd writes on first start.
func ServiceToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "credentials.json")
	data, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("load: read credentials: %w", err)
	}
	var creds map[string]any
	if err := json.Unmarshal(data, &creds); err != nil {
		return "", fmt.Errorf("load: parse %s: %w", path, err)
	}
	tok, _ := creds["service"].(string)
	if tok == "" {
		return "", fmt.Errorf("load: %s has no \"service\" token", path)
	}
	return tok, nil
}
