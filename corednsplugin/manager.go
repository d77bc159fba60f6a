package corednsplugin

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clog "github.com/coredns/coredns/plugin/pkg/log"
	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/internal/enrol"
	"github.com/conductor-edge/conductor/internal/viewfollow"
)

var log = clog.NewWithPlugin(pluginName)

// managerView follows the shifting manager's view of every site: which
// front-ends hold the site's bundle, and their health, load and region.
// It long-polls GET /v1/view?wait=VERSION, so a placement change reaches
// the answers as soon as the manager makes it.
//
// A view is trusted for cfg.managerMaxAge after it arrived (default 3× the
// manager's 25 s long-poll): a manager that answers nothing for that long
// may be gone, partitioned or stuck, and its last view may point at
// front-ends that no longer hold the site. Past that age the plugin answers
// as if it had no manager (static front-ends, else the fallback) until a
// fresh view arrives.
type managerView struct {
	cfg     *config
	sites   atomic.Pointer[map[string][]*frontend] // by zone (FQDN)
	updated atomic.Int64                           // unix ns of the last view; 0: none yet
	age     prometheus.Gauge
	stamp   prometheus.Gauge

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newManagerView(cfg *config) *managerView {
	v := &managerView{cfg: cfg}
	empty := map[string][]*frontend{}
	v.sites.Store(&empty)
	zones := strings.Join(cfg.zones, ",")
	v.age = managerViewAge.WithLabelValues(zones)
	v.stamp = managerViewTimestamp.WithLabelValues(zones)
	return v
}

// fresh reports whether the last view is young enough to answer from.
func (v *managerView) fresh(now time.Time) bool {
	u := v.updated.Load()
	return u != 0 && now.Sub(time.Unix(0, u)) <= v.cfg.managerMaxAge
}

// ready reports whether a first view has arrived.
func (v *managerView) ready() bool { return v.updated.Load() != 0 }

func (v *managerView) frontends(zone string) []*frontend { return (*v.sites.Load())[zone] }

// start loads the plugin's node certificate (enrolling it with
// manager_join the first time) and follows the manager. Without a
// certificate it fails, and CoreDNS with it, saying what to set.
func (v *managerView) start() error {
	ectx, ecancel := context.WithTimeout(context.Background(), 30*time.Second)
	id, err := enrol.Load(ectx, enrol.Config{Dir: v.cfg.managerIdentity, Managers: v.cfg.managers, Roots: v.cfg.managerCA,
		JoinToken: v.cfg.managerJoin, Name: v.cfg.managerNode, Role: "dns"})
	ecancel()
	if err != nil {
		return fmt.Errorf("plugin/conductor: manager: %v", err)
	}
	f := &viewfollow.Follower{Managers: v.cfg.managers, Identity: id, OnView: v.apply, Logf: log.Warningf}
	ctx, cancel := context.WithCancel(context.Background())
	v.cancel = cancel
	v.wg.Add(2)
	go func() {
		defer v.wg.Done()
		f.Run(ctx)
	}()
	go v.reportAge(ctx)
	return nil
}

// reportAge keeps the view-age gauge current between views.
func (v *managerView) reportAge(ctx context.Context) {
	defer v.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if u := v.updated.Load(); u != 0 {
				v.age.Set(now.Sub(time.Unix(0, u)).Seconds())
			}
		}
	}
}

func (v *managerView) stop() {
	if v.cancel != nil {
		v.cancel()
		v.wg.Wait()
	}
}

// apply takes a view from the manager.
func (v *managerView) apply(view viewfollow.View) {
	sites := map[string][]*frontend{}
	for site, entries := range view.Sites {
		zone := dns.Fqdn(strings.ToLower(site))
		for _, e := range entries {
			host := e.Addr
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			ip := net.ParseIP(host)
			if ip == nil {
				continue
			}
			f := &frontend{name: e.Node, region: e.Region, weight: 1}
			if ip.To4() != nil {
				f.v4 = []net.IP{ip.To4()}
			} else {
				f.v6 = []net.IP{ip}
			}
			// A front-end counts once the manager sees it healthy and it
			// reports the site's current bundle installed.
			f.healthy.Store(e.Healthy && e.Ready)
			f.loadBits.Store(math.Float64bits(e.Load))
			sites[zone] = append(sites[zone], f)
		}
	}
	v.sites.Store(&sites)
	now := time.Now()
	v.updated.Store(now.UnixNano())
	v.age.Set(0)
	v.stamp.Set(float64(now.UnixNano()) / 1e9)
}
