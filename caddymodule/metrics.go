package caddymodule

import (
	"errors"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/conductor-edge/conductor/caddymodule/internal/promreg"
	"github.com/conductor-edge/conductor/tmptransport"
)

// Metrics of TMP sessions, per session, on Caddy's metrics endpoint. Names
// follow Caddy's (caddy_reverse_proxy_upstreams_healthy): namespace
// "conductor", subsystem "tmp", base units (seconds, bytes, ratios).
// `role` is "frontend" for sessions this node dialed to a back-end (`peer`
// is the upstream address) and "backend" for sessions front-ends opened to
// this node (`peer` is the front-end's address).
var (
	descStreams = prometheus.NewDesc("conductor_tmp_session_open_streams",
		"Streams open on a TMP session.", []string{"role", "peer"}, nil)
	descOpened = prometheus.NewDesc("conductor_tmp_session_streams_opened_total",
		"Streams opened on a TMP session by either end.", []string{"role", "peer"}, nil)
	descRTT = prometheus.NewDesc("conductor_tmp_session_rtt_seconds",
		"Smoothed round-trip time of a TMP session.", []string{"role", "peer"}, nil)
	descMinRTT = prometheus.NewDesc("conductor_tmp_session_min_rtt_seconds",
		"Minimum round-trip time of a TMP session.", []string{"role", "peer"}, nil)
	descLoss = prometheus.NewDesc("conductor_tmp_session_loss_ratio",
		"Packet loss over the session, as measured by the receiving end; direction outbound is this node → peer (the peer's report), inbound is peer → this node.",
		[]string{"role", "peer", "direction"}, nil)
	descWindow = prometheus.NewDesc("conductor_tmp_session_congestion_window_packets",
		"Congestion window of the sender, per direction (inbound comes from the peer's report).", []string{"role", "peer", "direction"}, nil)
	descBytes = prometheus.NewDesc("conductor_tmp_stream_bytes_total",
		"Stream payload bytes by priority and direction (retransmissions excluded).", []string{"role", "peer", "priority", "direction"}, nil)
	descPackets = prometheus.NewDesc("conductor_tmp_session_packets_lost_total",
		"Packets this end declared lost.", []string{"role", "peer"}, nil)
	// Packets and their bytes on the wire (UDP payloads: headers, frames,
	// padding and tags), so that the average packet and the share resent
	// can be read beside the stream bytes above.
	descPacketsTotal = prometheus.NewDesc("conductor_tmp_session_packets_total",
		"Packets sent or received on a TMP session.", []string{"role", "peer", "direction"}, nil)
	descPacketBytes = prometheus.NewDesc("conductor_tmp_session_packet_bytes_total",
		"UDP payload bytes of the packets sent or received on a TMP session.", []string{"role", "peer", "direction"}, nil)
	descRetransmitted = prometheus.NewDesc("conductor_tmp_session_retransmitted_bytes_total",
		"Stream bytes this end sent again after declaring their packet lost.", []string{"role", "peer"}, nil)
	descPacketSize = prometheus.NewDesc("conductor_tmp_session_packet_size_bytes",
		"Largest packet the session sends now: its base size, or what path MTU discovery found.", []string{"role", "peer"}, nil)
	// What a stalled session waits for: the congestion window (bytes in
	// flight), the peer's session window (flow control window, outbound,
	// at 0 with bytes buffered), or the application.
	descInFlight = prometheus.NewDesc("conductor_tmp_session_bytes_in_flight",
		"Bytes of ack-eliciting packets sent and neither acknowledged nor declared lost.", []string{"role", "peer"}, nil)
	descSendBuffered = prometheus.NewDesc("conductor_tmp_session_send_buffered_bytes",
		"Bytes the session's streams wrote that the peer has not acknowledged.", []string{"role", "peer"}, nil)
	descFlowWindow = prometheus.NewDesc("conductor_tmp_session_flow_control_window_bytes",
		"Session-level flow control credit left: outbound is what the peer still lets this node send, inbound what this node still lets the peer send.", []string{"role", "peer", "direction"}, nil)

	// Per back-end listener (`listener` is its address): what it refused
	// or answered before any handshake completed, and the packets its
	// sessions dropped as forged or replayed.
	descRefused = prometheus.NewDesc("conductor_tmp_handshakes_refused_total",
		"TMP handshakes refused, by reason (version, invalid_token, half_open_limit, prefix_limit, crypto_limit, tls, timeout, protocol).", []string{"listener", "reason"}, nil)
	descRetries = prometheus.NewDesc("conductor_tmp_retries_sent_total",
		"Stateless Retry packets sent to validate a source address.", []string{"listener"}, nil)
	descResets = prometheus.NewDesc("conductor_tmp_stateless_resets_sent_total",
		"Stateless resets sent for packets of unknown sessions.", []string{"listener"}, nil)
	descUndecryptable = prometheus.NewDesc("conductor_tmp_packets_undecryptable_total",
		"Packets that failed authentication (forged or corrupted).", []string{"listener"}, nil)
	descReplayed = prometheus.NewDesc("conductor_tmp_packets_replayed_total",
		"Authentic packets dropped as replays.", []string{"listener"}, nil)
	descHalfOpen = prometheus.NewDesc("conductor_tmp_half_open_sessions",
		"TMP sessions whose handshake is under way.", []string{"listener"}, nil)
)

type tmpCollector struct{}

func (tmpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStreams, descOpened, descRTT, descMinRTT, descLoss, descWindow, descBytes, descPackets, descPacketSize,
		descPacketsTotal, descPacketBytes, descRetransmitted, descInFlight, descSendBuffered, descFlowWindow, descRefused, descRetries, descResets, descUndecryptable, descReplayed, descHalfOpen} {
		ch <- d
	}
}

func (tmpCollector) Collect(ch chan<- prometheus.Metric) {
	upstreams.each(func(u *upstream) {
		if s := u.r.Current(); s != nil {
			collectSession(ch, "frontend", u.addr, s.Stats())
		}
	})
	listeners.Range(func(_, v any) bool {
		if sl, ok := v.(*sharedListener); ok {
			for _, s := range sl.l.Sessions() {
				collectSession(ch, "backend", s.RemoteAddr().String(), s.Stats())
			}
			collectListener(ch, sl.addr, sl.l.Stats())
		}
		return true
	})
}

func ratio(lost, received uint64) float64 {
	if lost+received == 0 {
		return 0
	}
	return float64(lost) / float64(lost+received)
}

func collectSession(ch chan<- prometheus.Metric, role, peer string, st tmptransport.Stats) {
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(descStreams, g, float64(st.OpenStreams), role, peer)
	ch <- prometheus.MustNewConstMetric(descOpened, c, float64(st.StreamsOpened), role, peer)
	ch <- prometheus.MustNewConstMetric(descRTT, g, st.SmoothedRTT.Seconds(), role, peer)
	ch <- prometheus.MustNewConstMetric(descMinRTT, g, st.MinRTT.Seconds(), role, peer)
	ch <- prometheus.MustNewConstMetric(descLoss, g, ratio(st.Outbound.PacketsLost, st.Outbound.PacketsReceived), role, peer, "outbound")
	ch <- prometheus.MustNewConstMetric(descLoss, g, ratio(st.Inbound.PacketsLost, st.Inbound.PacketsReceived), role, peer, "inbound")
	ch <- prometheus.MustNewConstMetric(descWindow, g, float64(st.Outbound.SenderWindow), role, peer, "outbound")
	ch <- prometheus.MustNewConstMetric(descWindow, g, float64(st.Inbound.SenderWindow), role, peer, "inbound")
	ch <- prometheus.MustNewConstMetric(descPackets, c, float64(st.PacketsLost), role, peer)
	ch <- prometheus.MustNewConstMetric(descPacketSize, g, float64(st.PacketSize), role, peer)
	ch <- prometheus.MustNewConstMetric(descPacketsTotal, c, float64(st.PacketsSent), role, peer, "sent")
	ch <- prometheus.MustNewConstMetric(descPacketsTotal, c, float64(st.PacketsReceived), role, peer, "received")
	ch <- prometheus.MustNewConstMetric(descPacketBytes, c, float64(st.BytesSent), role, peer, "sent")
	ch <- prometheus.MustNewConstMetric(descPacketBytes, c, float64(st.BytesReceived), role, peer, "received")
	ch <- prometheus.MustNewConstMetric(descRetransmitted, c, float64(st.RetransmittedBytes), role, peer)
	ch <- prometheus.MustNewConstMetric(descInFlight, g, float64(st.BytesInFlight), role, peer)
	ch <- prometheus.MustNewConstMetric(descSendBuffered, g, float64(st.SendBuffered), role, peer)
	ch <- prometheus.MustNewConstMetric(descFlowWindow, g, float64(st.SendWindow), role, peer, "outbound")
	ch <- prometheus.MustNewConstMetric(descFlowWindow, g, float64(st.ReceiveWindow), role, peer, "inbound")
	for p := 0; p < tmptransport.NumPriorities; p++ {
		prio := strconv.Itoa(p)
		ch <- prometheus.MustNewConstMetric(descBytes, c, float64(st.StreamBytesSent[p]), role, peer, prio, "sent")
		ch <- prometheus.MustNewConstMetric(descBytes, c, float64(st.StreamBytesReceived[p]), role, peer, prio, "received")
	}
}

func collectListener(ch chan<- prometheus.Metric, addr string, st tmptransport.ListenerStats) {
	c := prometheus.CounterValue
	for _, r := range tmptransport.Refusals() {
		ch <- prometheus.MustNewConstMetric(descRefused, c, float64(st.Refused[r]), addr, r.String())
	}
	ch <- prometheus.MustNewConstMetric(descRetries, c, float64(st.RetriesSent), addr)
	ch <- prometheus.MustNewConstMetric(descResets, c, float64(st.ResetsSent), addr)
	ch <- prometheus.MustNewConstMetric(descUndecryptable, c, float64(st.DecryptFailures), addr)
	ch <- prometheus.MustNewConstMetric(descReplayed, c, float64(st.ReplaysDropped), addr)
	ch <- prometheus.MustNewConstMetric(descHalfOpen, prometheus.GaugeValue, float64(st.HalfOpen), addr)
}

// registerMetrics adds the collector to this config's registry (each config
// load has its own).
func registerMetrics(ctx caddy.Context) error {
	for _, c := range []prometheus.Collector{tmpCollector{}, serviceStreams} {
		err := ctx.GetMetricsRegistry().Register(c)
		var are prometheus.AlreadyRegisteredError
		if err != nil && !errors.As(err, &are) {
			return err
		}
	}
	return nil
}

// serviceStreams counts the TCP-service streams a back-end got, by service
// and outcome (connected, refused, dial_failed).
var serviceStreams = promreg.CounterVec("tmp", "service_streams_total",
	"TCP-service streams a back-end got over TMP, by service and outcome.",
	"service", "outcome")
