// Package server is riskd's API edge: it serves the risk.v1 Connect services
// (Connect, gRPC and gRPC-Web, over HTTP/1.1 and h2c on one port), gRPC
// health and server reflection; authenticates every call but health and
// reflection; checks the caller's role against the procedure; maps domain
// errors to Connect codes in one place (connectError); and loads riskd's
// configuration from flags, RISKD_* environment variables and a YAML file.
//
// Handlers validate nothing themselves beyond request shape: validation of
// events is package ingest's, once, and everything behind the edge trusts
// typed values. Client-facing error messages never carry internals.
package server
