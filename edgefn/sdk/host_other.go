//go:build !wasip1

package sdk

// Outside WebAssembly (the function's own tests) there is no host:
// fetches are refused, no data files exist, and the log is dropped.
func hostFetch(string, []byte) (int, int) { return 0, 0 }
func hostReadData(string, []byte) int     { return -1 }
func hostLog(string)                      {}
