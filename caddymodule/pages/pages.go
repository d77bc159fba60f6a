// Package pages renders the pages the front-end serves in place of the
// origin's: the load wait page, the apology page, the slow-origin
// substitute and the waiting room's queue page. Each is real HTML and CSS
// that refreshes by itself; an operator may replace any of them with an
// html/template file given the same data.
package pages

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"strconv"
	"time"
)

//go:embed templates
var files embed.FS

var (
	css      template.CSS
	builtins = map[string]*template.Template{}
)

// Names of the built-in pages.
const (
	Wait    = "wait"
	Apology = "apology"
	Slow    = "slow"
	Queue   = "queue"
	Full    = "full"
)

func init() {
	b, err := files.ReadFile("templates/base.css")
	if err != nil {
		panic(err)
	}
	css = template.CSS(b)
	for _, name := range []string{Wait, Apology, Slow, Queue, Full} {
		builtins[name] = template.Must(template.ParseFS(files, "templates/"+name+".html"))
	}
}

// Data is what every page template gets.
type Data struct {
	Site           string
	Message        string
	RefreshSeconds int
	LoadPercent    float64
	Position       int
	WaitKnown      bool
	WaitText       string
	CSS            template.CSS
}

// Load parses an operator's template file, failing at config load with
// the file's name.
func Load(path string) (*template.Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("page template: %v", err)
	}
	t, err := template.New(path).Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("page template %s: %v", path, err)
	}
	return t, nil
}

// Write renders page name (or custom, if not nil) with status, sets
// Retry-After and Refresh, and marks the answer as a substitute so
// scripts and tests can tell it from the origin's.
func Write(w http.ResponseWriter, r *http.Request, name string, custom *template.Template, status int, d Data) error {
	t := custom
	if t == nil {
		t = builtins[name]
	}
	if d.RefreshSeconds <= 0 {
		d.RefreshSeconds = 5
	}
	d.CSS = css
	var buf bytes.Buffer
	if err := t.Execute(&buf, d); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Retry-After", strconv.Itoa(d.RefreshSeconds))
	h.Set("Conductor-Substitute", name)
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	h.Del("ETag")
	h.Del("Last-Modified")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		_, err := w.Write(buf.Bytes())
		return err
	}
	return nil
}

// WaitText says a wait in words.
func WaitText(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute"
	case d < 2*time.Minute:
		return "about a minute"
	case d < time.Hour:
		return fmt.Sprintf("about %d minutes", int(d.Minutes()+0.5))
	}
	return fmt.Sprintf("about %.1f hours", d.Hours())
}
