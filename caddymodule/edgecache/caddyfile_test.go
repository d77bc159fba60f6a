package edgecache

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestCaddyfileErrorsNameTheLine: a malformed edge_cache block fails when
// the config is adapted, naming the option and the line.
func TestCaddyfileErrorsNameTheLine(t *testing.T) {
	for name, c := range map[string]struct{ body, want string }{
		"unknown option":    {"\t\tcolour blue\n", `edge_cache: unknown subdirective "colour", at Caddyfile:3`},
		"bad policy":        {"\t\tpolicy mru\n", `unknown eviction policy "mru" (want tinylfu, lru, lfu, fifo or random), at Caddyfile:3`},
		"bad size":          {"\t\tmax_size lots\n", `max_size: invalid size "lots", at Caddyfile:3`},
		"bad duration":      {"\t\tstale_on_error forever\n", `stale_on_error: invalid duration "forever", at Caddyfile:3`},
		"refresh fraction":  {"\t\trefresh_ahead 1.5\n", `refresh_ahead: "1.5" is not a fraction between 0 and 1, at Caddyfile:3`},
		"warm without host": {"\t\twarm /only-a-path\n", `warm: no host in`},
		"missing argument":  {"\t\tdisk\n", `wrong argument count or unexpected line ending after 'disk', at Caddyfile:3`},
	} {
		t.Run(name, func(t *testing.T) {
			cf := ":8080 {\n\tedge_cache {\n" + c.body + "\t}\n\trespond ok\n}\n"
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cf), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, c.want)
			}
		})
	}
}
