//go:build !unix

package auth

// Windows and others do not express access as Unix permission bits.
func modesMeanSomething() bool { return false }
