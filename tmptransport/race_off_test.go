//go:build !race

package tmptransport

const raceEnabled = false
