// Package tmptransport implements TMP, the link between a Conductor front-end
// and back-end: one long-lived, encrypted, multiplexed session over UDP that
// carries many client requests at once.
//
// A front-end dials a back-end once and keeps the session; every client
// request becomes a Stream (a net.Conn with half-close, reset and
// deadlines) with a priority from 0 (most urgent) to 4. The sender's data
// blender composes packets from the streams by priority, as the seed's
// "data blender" does, and the congestion controller claims bandwidth in
// proportion to the number of streams hosted. Each end reports what it sees
// of the link, so Session.Stats shows both directions.
//
//	l, _ := tmptransport.Listen(":4433", serverConfig)
//	s, _ := l.Accept(ctx)
//	st, _ := s.AcceptStream(ctx)
//
//	c, _ := tmptransport.Dial(ctx, "backend:4433", clientConfig)
//	st, _ := c.OpenStream(ctx, 0)
//
// SPEC.md specifies the wire format. The package imports neither Caddy nor
// CoreDNS.
package tmptransport
