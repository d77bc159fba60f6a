// Package fleetopt parses the `fleet [<front-ends>]` option that
// waiting_room and load_gate share: their limit is the site's, across its
// front-ends, through leases from the shifting manager.
package fleetopt

import (
	"fmt"
	"strconv"
)

// Parse reads the option's arguments: none, or the number of front-ends
// to divide the limit by while no lease holds (1-1000; 0: the default).
func Parse(args []string) (int, error) {
	switch len(args) {
	case 0:
		return 0, nil
	case 1:
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 || n > 1000 {
			return 0, fmt.Errorf("fleet %q: want the number of front-ends to divide by without a lease (1-1000)", args[0])
		}
		return n, nil
	}
	return 0, fmt.Errorf("fleet takes at most one argument")
}
