package selfrequest

import (
	"context"
	"net/http"
	"sync/atomic"
)

// A Shortcut answers a self-request from memory, without a pass through
// the server: body and true for a fresh, stored 200 of host+uri as a
// request with header h would get it; false when the request must take
// the full path (a miss, a stale or revalidating entry, an entry that
// needs a handler's processing).
//
// Why: an ESI page of ten fragments made ten passes through Caddy's
// server (its context, replacer, logging and every handler) for ten
// stored responses, and a page of cached fragments ran at an eighth of
// the same page whole from the cache. Varnish's ESI looks fragments up in
// its cache directly; this is how Conductor's esi does, without knowing
// which cache is there: the cache offers the shortcut on the page's own
// request.
type Shortcut func(host, uri string, h http.Header) ([]byte, bool)

type shortcutKey struct{}

// WithShortcutSlot returns a context in which a handler further down the
// chain can Offer a shortcut, and the function that reads it.
func WithShortcutSlot(ctx context.Context) (context.Context, func() Shortcut) {
	slot := new(atomic.Pointer[Shortcut])
	return context.WithValue(ctx, shortcutKey{}, slot), func() Shortcut {
		if s := slot.Load(); s != nil {
			return *s
		}
		return nil
	}
}

// Offer sets s in the slot of r's context, if a handler above made one
// and no handler nearer to it offered first. A fresh stored response for
// host+uri in the offering cache was stored by that cache for that host
// and URI, so answering from it is what the full path would do.
func Offer(r *http.Request, s Shortcut) {
	if slot, ok := r.Context().Value(shortcutKey{}).(*atomic.Pointer[Shortcut]); ok {
		slot.CompareAndSwap(nil, &s)
	}
}
