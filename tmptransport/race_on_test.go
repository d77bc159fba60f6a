//go:build race

package tmptransport

// raceEnabled: the race detector is on, and sync.Pool drops some of what
// it is given, so pooled buffers cost allocations again.
const raceEnabled = true
