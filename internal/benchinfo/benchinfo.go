// Package benchinfo describes the machine a benchmark ran on, for its
// report: figures from different machines do not compare.
package benchinfo

import (
	"fmt"
	"os"
	"runtime"
	"strings"
)

// Machine is "<cores> × <CPU model>, <Go version>, <os/arch>".
func Machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d × %s, %s, %s", runtime.NumCPU(), cpu, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
}
