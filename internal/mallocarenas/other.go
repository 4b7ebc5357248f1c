//go:build !cgo || !linux

package mallocarenas

func capped() bool { return false }

func glibc() bool { return false }
