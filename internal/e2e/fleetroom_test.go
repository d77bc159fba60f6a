package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conductor-edge/conductor/internal/topology"
)

// Two front-ends share one waiting room of 100 places, through leases
// from the manager: 300 visitors arriving at once, 150 at each, get at
// most 100 places together (+ the stated slack, one place per front-end),
// and a visitor admitted at one front-end is in session at the other.
// (Without `fleet`, each front-end admitted its own 100: 200.)
func TestWaitingRoomCapacityAcrossFrontends(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: end-to-end")
	}
	tp, err := topology.Start(context.Background(), topology.Options{
		Binary:       binary,
		Dir:          filepath.Join(tmpDir, "fleetroom"),
		OriginAddr:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		BackendTMP:   fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		Frontends:    []string{fmt.Sprintf("127.0.0.24:%d", freePort(t, "127.0.0.24")), fmt.Sprintf("127.0.0.25:%d", freePort(t, "127.0.0.25"))},
		AdminBase:    freeAdminBase(t, 3),
		Manager:      fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		ManagerExtra: "settle 10m",
		FrontendExtra: "waiting_room /product/* fleetroom {\n\t\ttotal_active_users 100\n\t\tnew_users_per_minute 60000\n\t\t" +
			"session_duration 10m\n\t\tsecret e2e-fleet-room-secret-0123\n\t\tfleet\n\t}",
		Progress: func(f string, a ...any) { t.Logf(f, a...) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Stop()
	// Each front-end holds a lease: half the room, as neither has a line.
	for i := range 2 {
		waitUntil(t, 15*time.Second, fmt.Sprintf("fe%d's lease", i+1), func() bool {
			return frontendMetric(t, tp, i, "conductor_waiting_room_lease_capacity", `room="fleetroom"`) == 50
		})
	}
	var mu sync.Mutex
	admitted := map[int]int{}
	var cookies []*http.Cookie
	var wg sync.WaitGroup
	for i := range 300 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fe := i % 2
			resp, err := client.Get(tp.FrontendURL(fe) + fmt.Sprintf("/product/%d", 1+i%6))
			if err != nil {
				return
			}
			resp.Body.Close()
			if strings.HasPrefix(resp.Header.Get("Conductor-Waiting-Room"), "admitted") {
				mu.Lock()
				admitted[fe]++
				if fe == 0 {
					cookies = append(cookies, resp.Cookies()...)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	total := admitted[0] + admitted[1]
	t.Logf("admitted: fe1 %d, fe2 %d, together %d of 300 (room of 100)", admitted[0], admitted[1], total)
	if total > 102 || total < 90 || admitted[0] == 0 || admitted[1] == 0 {
		t.Fatalf("admitted %v: want 90-102 together, some at each", admitted)
	}
	// fe1's visitor goes on at fe2, in session.
	if len(cookies) == 0 {
		t.Fatal("no cookie from fe1")
	}
	req, _ := http.NewRequest(http.MethodGet, tp.FrontendURL(1)+"/product/2", nil)
	for _, c := range cookies {
		if strings.HasPrefix(c.Name, "__conductor_wr_") {
			req.AddCookie(c)
			break
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.HasPrefix(resp.Header.Get("Conductor-Waiting-Room"), "queued") {
		t.Fatalf("fe1's visitor at fe2: %d %q", resp.StatusCode, resp.Header.Get("Conductor-Waiting-Room"))
	}
}
