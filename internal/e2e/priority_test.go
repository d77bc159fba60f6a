package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// findHandler returns the admin API path of the first handler named name
// in a server's config.
func findHandler(v any, path, name string) string {
	switch x := v.(type) {
	case map[string]any:
		if x["handler"] == name {
			return path
		}
		for k, c := range x {
			if p := findHandler(c, path+"/"+k, name); p != "" {
				return p
			}
		}
	case []any:
		for i, c := range x {
			if p := findHandler(c, path+"/"+strconv.Itoa(i), name); p != "" {
				return p
			}
		}
	}
	return ""
}

// The priority handler's decision reaches the origin and the TMP link, and
// its rules change live: by config reload and through the admin API.
func TestPriorityRulesReachTheLinkAndChangeLive(t *testing.T) {
	tp := shared(t)
	tp.Opts.ProxyExtra = "header_up Conductor-Priority {http.vars.conductor_priority}"
	rules := `priority {
		default 3
		0 cookie cart
		4 path /img/*
	}`
	if err := tp.Reload(1, rules); err != nil {
		t.Fatal(err)
	}
	who := func(cookie string) string {
		t.Helper()
		req, _ := http.NewRequest("GET", tp.FrontendURL(1)+"/whoami", nil)
		if cookie != "" {
			req.AddCookie(&http.Cookie{Name: "cart", Value: cookie})
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var w map[string]any
		json.NewDecoder(resp.Body).Decode(&w)
		return fmt.Sprint(w["priority"])
	}
	if p := who("3.1"); p != "0" {
		t.Fatalf("shopper with a cart: priority %s, want 0", p)
	}
	if p := who(""); p != "3" {
		t.Fatalf("browsing: priority %s, want 3", p)
	}
	// The stream itself travelled at priority 0.
	_, body := get(t, "http://"+tp.FrontendAdmin(1)+"/metrics")
	re := regexp.MustCompile(`conductor_tmp_stream_bytes_total\{direction="sent",peer="[^"]+",priority="0",role="frontend"\} (\d+)`)
	if m := re.FindSubmatch(body); m == nil || string(m[1]) == "0" {
		t.Fatalf("no stream bytes sent at priority 0 on the TMP session: %v", m)
	}

	// Live change through the admin API: default 3 → 1.
	_, cfg := get(t, "http://"+tp.FrontendAdmin(1)+"/config/apps/http/servers")
	var servers any
	json.Unmarshal(cfg, &servers)
	path := findHandler(servers, "/config/apps/http/servers", "priority")
	if path == "" {
		t.Fatalf("no priority handler in %s", cfg)
	}
	req, _ := http.NewRequest(http.MethodPatch, "http://"+tp.FrontendAdmin(1)+path+"/default", bytes.NewReader([]byte("1")))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PATCH %s: %s %s", path, resp.Status, b)
	}
	if p := who(""); p != "1" {
		t.Fatalf("after the admin API change: priority %s, want 1", p)
	}
	// A bad rule through the admin API is refused, and the old rules stay.
	req, _ = http.NewRequest(http.MethodPatch, "http://"+tp.FrontendAdmin(1)+path+"/default", strings.NewReader("9"))
	req.Header.Set("Content-Type", "application/json")
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == 200 || !strings.Contains(string(b), "default 9 out of range") {
		t.Fatalf("PATCH default 9: %s %s, want a clear refusal", resp.Status, b)
	}
	if p := who(""); p != "1" {
		t.Fatalf("after a refused change: priority %s, want 1", p)
	}
}
