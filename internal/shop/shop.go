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
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"

	"github.com/conductor-edge/conductor/internal/shop/cart"
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

// Prices is the catalogue as the cart's price list (what the shop's
// bundle carries as data/catalogue.json).
func Prices() []cart.Item {
	out := make([]cart.Item, len(Catalogue))
	for i, p := range Catalogue {
		out[i] = cart.Item{ID: p.ID, Name: p.Name, Price: p.Price}
	}
	return out
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
				fmt.Fprintf(b, `<li><a href="/product/%d">%s</a> — $%.2f <img src="/img/p%d.jpg" width="64" alt=""></li>`, p.ID, html.EscapeString(p.Name), p.Price, p.ID)
			}
			b.WriteString(`</ul><p><a href="/cart">Cart</a> · <a href="/slow">A slow page</a></p>`)
		}, name)
	})
	// A product page is made of fragments that change at different
	// rates: the page itself (5 min), the price (30 s), the stock (never
	// cached) and the recommendations (10 min). A surrogate that speaks
	// ESI (the front-end's esi handler announces it) gets a template and
	// composes the page itself, caching each piece apart; anyone else gets
	// the page whole. The page is lighter for the lite and text classes the
	// front-end's adapt handler sends (Vary says so).
	mux.HandleFunc("GET /product/{id}", func(w http.ResponseWriter, r *http.Request) {
		p, ok := product(r.PathValue("id"))
		if !ok {
			http.NotFound(w, r)
			return
		}
		class := r.Header.Get("Conductor-Client-Class")
		esi := strings.Contains(r.Header.Get("Surrogate-Capability"), "ESI/1.0")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Header().Set("Vary", "Conductor-Client-Class, Surrogate-Capability")
		if esi {
			w.Header().Set("Surrogate-Control", `content="ESI/1.0"`)
		}
		piece := func(b *strings.Builder, path string, inline func(*strings.Builder)) {
			if esi {
				fmt.Fprintf(b, `<esi:include src="%s"/>`, path)
				return
			}
			inline(b)
		}
		page(w, p.Name, func(b *strings.Builder) {
			if class != "text" {
				fmt.Fprintf(b, `<img src="/img/p%d.jpg" width="800" alt="%s">`, p.ID, html.EscapeString(p.Name))
			}
			piece(b, fmt.Sprintf("/fragment/price/%d", p.ID), func(b *strings.Builder) { priceFragment(b, p) })
			piece(b, fmt.Sprintf("/fragment/stock/%d", p.ID), func(b *strings.Builder) { stockFragment(b, p) })
			fmt.Fprintf(b, `<form method="post" action="/cart/add"><input type="hidden" name="id" value="%d"><button>Add to cart</button></form>`, p.ID)
			if esi {
				fmt.Fprintf(b, `<esi:try><esi:attempt><esi:include src="/fragment/recommendations/%d"/></esi:attempt>`+
					`<esi:except><p><a href="/">More in the shop</a></p></esi:except></esi:try>`, p.ID)
			} else {
				recommendationsFragment(b, p, class)
			}
		}, name)
	})
	mux.HandleFunc("GET /fragment/price/{id}", func(w http.ResponseWriter, r *http.Request) {
		fragment(w, r, "public, max-age=30", priceFragment)
	})
	mux.HandleFunc("GET /fragment/stock/{id}", func(w http.ResponseWriter, r *http.Request) {
		fragment(w, r, "no-store", stockFragment)
	})
	mux.HandleFunc("GET /fragment/recommendations/{id}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Vary", "Conductor-Client-Class")
		fragment(w, r, "public, max-age=600", func(b *strings.Builder, p Product) {
			recommendationsFragment(b, p, r.Header.Get("Conductor-Client-Class"))
		})
	})
	// Product photos: 1600×1067 JPEGs, made once per process.
	var photoMu sync.Mutex
	photos := map[int][]byte{}
	mux.HandleFunc("GET /img/{file}", func(w http.ResponseWriter, r *http.Request) {
		var id int
		if _, err := fmt.Sscanf(r.PathValue("file"), "p%d.jpg", &id); err != nil || id < 1 || id > len(Catalogue) || r.PathValue("file") != fmt.Sprintf("p%d.jpg", id) {
			http.NotFound(w, r)
			return
		}
		photoMu.Lock()
		b, ok := photos[id]
		if !ok {
			b = Photo(id, 1600, 1067)
			photos[id] = b
		}
		photoMu.Unlock()
		w.Header().Set("Content-Type", "image/jpeg")
		w.Header().Set("Cache-Control", "public, max-age=86400")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
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
	// The cart's summary as JSON: the demo's edge function (cartfn) answers
	// the same at the front-end, from the same code.
	mux.HandleFunc("GET /api/cart", func(w http.ResponseWriter, r *http.Request) {
		cookie := ""
		if c, err := r.Cookie("cart"); err == nil {
			cookie = c.Value
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "private, no-store")
		w.Header().Set("Conductor-Answered-By", "origin "+name)
		w.Write(cart.Compute(cookie, Prices()).JSON())
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

// fragment serves one piece of a product page.
func fragment(w http.ResponseWriter, r *http.Request, cacheControl string, render func(*strings.Builder, Product)) {
	p, ok := product(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	var b strings.Builder
	render(&b, p)
	w.Header().Set("Cache-Control", cacheControl)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, b.String())
}

func priceFragment(b *strings.Builder, p Product) {
	fmt.Fprintf(b, `<p class="price">$%.2f</p>`, p.Price)
}

// stockFragment changes every few seconds, as stock does.
func stockFragment(b *strings.Builder, p Product) {
	fmt.Fprintf(b, `<p class="stock">%d in stock</p>`, 5+(p.ID*7+int(time.Now().Unix()/5))%40)
}

// recommendationsFragment shows three other products, with photos except
// for the text class.
func recommendationsFragment(b *strings.Builder, p Product, class string) {
	b.WriteString(`<h2>You may also like</h2><ul class="recommendations">`)
	for i := 1; i <= 3; i++ {
		q := Catalogue[(p.ID-1+i)%len(Catalogue)]
		img := ""
		if class != "text" {
			img = fmt.Sprintf(`<img src="/img/p%d.jpg" width="200" alt="">`, q.ID)
		}
		fmt.Fprintf(b, `<li><a href="/product/%d">%s%s</a></li>`, q.ID, img, html.EscapeString(q.Name))
	}
	b.WriteString("</ul>")
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
	// The page reports its own load time in its title once loaded: what the
	// adaptation benchmark reads from headless Chromium.
	fmt.Fprintf(&b, "<footer>served by origin %s</footer><script>addEventListener('load',()=>{document.title+=' | load '+Math.round(performance.now())+' ms'})</script></body></html>\n", html.EscapeString(origin))
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, b.String())
}
