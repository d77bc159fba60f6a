package caddymodule

import "github.com/conductor-edge/conductor/shifting"

// LinkQuality reports this node's TMP links for the manager: the smoothed
// RTT and the loss the back-end measured on what this node sent. The agent
// finds it through the conductor app (ctx.App).
func (a *App) LinkQuality() map[string]shifting.LinkQuality {
	out := map[string]shifting.LinkQuality{}
	upstreams.each(func(u *upstream) {
		if s := u.r.Current(); s != nil {
			st := s.Stats()
			out[u.addr] = shifting.LinkQuality{
				RTTMS: float64(st.SmoothedRTT.Microseconds()) / 1000,
				Loss:  ratio(st.Outbound.PacketsLost, st.Outbound.PacketsReceived),
			}
		}
	})
	return out
}
