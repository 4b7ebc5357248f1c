// Package cli is riskctl: it parses the command line, finds riskd and the
// credentials for the verb's role, calls riskd over Connect and prints the
// answer for people or, with --json, for scripts.
//
// Commands are nouns with verbs ("decisions get"); each noun lives in its own
// file and adds itself to the command table with register in an init
// function, so new nouns slot in without touching the others. The table is
// built once at init and read-only afterwards.
//
// Run returns an exit code that scripts can trust (see ExitOK and friends):
// 1 means riskd answered with an error, 3 means no riskd answered (or there
// were no credentials to ask it with), 2 means the command line was wrong.
// Run is safe to call from several goroutines with distinct Envs; the tests
// do.
package cli
