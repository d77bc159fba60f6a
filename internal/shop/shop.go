// Package shop is the demo origin: a small web shop with the behaviours the
// front-end's features are about (cacheable catalogue, images, a cart cookie
// that marks a buyer, a checkout POST, a slow page, a 404), plus the
// endpoints end-to-end tests need (body echo, server-sent events, WebSocket
// echo, and a report of the proxy headers it received).
package shop

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/websocket"
)

// Product is one item of the catalogue.
type Product struct {
	ID    int     `json:"id"`
	Name  string  `json:"name"`
	Price float64 `json:"price"`
}

// Catalogue is the shop's fixed stock.
var Catalogue = []Product{
	{1, "Conductor tee", 19.99}, {2, "Edge mug", 9.50}, {3, "TMP sticker pack", 4.00},
	{4, "Blender apron", 24.00}, {5, "Front-end hoodie", 49.00}, {6, "Back-end cap", 15.00},
}

// Handler returns the shop. name appears on every page, so tests can tell
// origins apart.
func Handler(name string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		page(w, "Conductor shop", func(b *strings.Builder) {
			b.WriteString("<ul>")
			for _, p := range Catalogue {
				fmt.Fprintf(b, `<li><a href="/product/%d">%s</a> — $%.2f <img src="/img/%d.png" width="32"></li>`, p.ID, html.EscapeString(p.Name), p.Price, p.ID)
			}
			b.WriteString(`</ul><p><a href="/cart">Cart</a> · <a href="/slow">A slow page</a></p>`)
		}, name)
	})
	mux.HandleFunc("GET /product/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := product(r.PathValue("id"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		page(w, p.Name, func(b *strings.Builder) {
			fmt.Fprintf(b, `<p>$%.2f</p><img src="/img/%d.png"><form method="post" action="/cart/add"><input type="hidden" name="id" value="%d"><button>Add to cart</button></form>`, p.Price, p.ID, p.ID)
		}, name)
	})
	mux.HandleFunc("GET /img/{file}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(strings.TrimSuffix(r.PathValue("file"), ".png"))
		if err != nil || id < 1 || id > len(Catalogue) {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		img := image.NewRGBA(image.Rect(0, 0, 64, 64))
		c := color.RGBA{uint8(40 * id), uint8(200 - 30*id), 160, 255}
		for y := 0; y < 64; y++ {
			for x := 0; x < 64; x++ {
				img.Set(x, y, c)
			}
		}
		png.Encode(w, img)
	})
	mux.HandleFunc("POST /cart/add", func(w http.ResponseWriter, r *http.Request) {
		p, ok := product(r.FormValue("id"))
		if !ok {
			http.Error(w, "no such product", http.StatusBadRequest)
			return
		}
		cart := r.URL.Query().Get("cart")
		if c, err := r.Cookie("cart"); err == nil {
			cart = c.Value
		}
		if cart != "" {
			cart += "."
		}
		cart += strconv.Itoa(p.ID)
		// The cart cookie marks a shopper about to buy: the front-end's
		// priority rules look for it.
		http.SetCookie(w, &http.Cookie{Name: "cart", Value: cart, Path: "/", HttpOnly: true})
		http.Redirect(w, r, "/cart", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /cart", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		items := 0
		if c, err := r.Cookie("cart"); err == nil && c.Value != "" {
			items = len(strings.Split(c.Value, "."))
		}
		page(w, "Your cart", func(b *strings.Builder) {
			fmt.Fprintf(b, `<p>%d item(s)</p><form method="post" action="/checkout"><button>Check out</button></form>`, items)
		}, name)
	})
	mux.HandleFunc("POST /checkout", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		http.SetCookie(w, &http.Cookie{Name: "cart", Value: "", Path: "/", MaxAge: -1})
		page(w, "Thank you", func(b *strings.Builder) {
			fmt.Fprintf(b, "<p>Order %d placed.</p>", time.Now().UnixNano()%100000)
		}, name)
	})
	mux.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		d := 3 * time.Second
		if v, err := time.ParseDuration(r.URL.Query().Get("d")); err == nil && v <= time.Minute {
			d = v
		}
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		// Cacheable, so the front-end's substitute page finds it on retry.
		w.Header().Set("Cache-Control", "public, max-age=30")
		page(w, "Slow page", func(b *strings.Builder) { fmt.Fprintf(b, "<p>Took %v.</p>", d) }, name)
	})
	// Test endpoints.
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		// Read everything first: HTTP/1.1 servers (Go's, and proxies in
		// their default mode) are not full-duplex.
		b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	})
	mux.HandleFunc("POST /sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(h.Sum(nil)))
	})
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.PathValue("n"))
		if err != nil || n < 0 || n > 1<<30 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		buf := make([]byte, 32<<10)
		for i := range buf {
			buf[i] = byte(i * 7)
		}
		for n > 0 {
			k := min(n, len(buf))
			w.Write(buf[:k])
			n -= k
		}
	})
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-cache")
		fl, _ := w.(http.Flusher)
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		if n <= 0 {
			n = 5
		}
		for i := 0; i < n; i++ {
			fmt.Fprintf(w, "id: %d\ndata: tick %d\n\n", i, i)
			if fl != nil {
				fl.Flush()
			}
			select {
			case <-time.After(20 * time.Millisecond):
			case <-r.Context().Done():
				return
			}
		}
	})
	mux.Handle("GET /ws", websocket.Handler(func(c *websocket.Conn) { io.Copy(c, c) }))
	mux.HandleFunc("GET /whoami", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"origin":          name,
			"remote_addr":     r.RemoteAddr,
			"x_forwarded_for": r.Header.Get("X-Forwarded-For"),
			"priority":        r.Header.Get("Conductor-Priority"),
		})
	})
	return mux
}

func product(id string) (Product, bool) {
	n, err := strconv.Atoi(id)
	if err != nil || n < 1 || n > len(Catalogue) {
		return Product{}, false
	}
	return Catalogue[n-1], true
}

func page(w http.ResponseWriter, title string, body func(*strings.Builder), origin string) {
	var b strings.Builder
	fmt.Fprintf(&b, "<!doctype html><html><head><meta charset=utf-8><title>%s</title></head><body><h1>%s</h1>", html.EscapeString(title), html.EscapeString(title))
	body(&b)
	fmt.Fprintf(&b, "<footer>served by origin %s</footer></body></html>\n", html.EscapeString(origin))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, b.String())
}
