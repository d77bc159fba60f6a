package shifting

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzEnroll feeds the enrolment endpoint arbitrary join tokens and bodies:
// it answers 400 or 401 with a reason, never panics, and never issues a
// certificate without a token it minted.
func FuzzEnroll(f *testing.F) {
	f.Add("", []byte(""))
	f.Add("Bearer x", []byte(`{"csr":""}`))
	f.Add("Bearer 00112233445566778899aabbccddeeff.00112233445566778899aabbccddeeff", []byte(`{"csr":"-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n"}`))
	f.Add("Bearer ..", []byte(`{"csr": 5}`))
	f.Add("Bearer 0011.zz", []byte(`[]`))
	m, err := New(Config{Store: FileStore{Dir: f.TempDir()}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, auth string, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/enroll", bytes.NewReader(body))
		req.Header.Set("Authorization", auth)
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnauthorized {
			t.Fatalf("enrol with %q %q: %d %s", auth, body, rec.Code, rec.Body)
		}
	})
}

// FuzzJoinTokenRequest: whatever an admin's request holds, the manager
// answers with a token or a 400, and keeps no more tokens than its bound.
func FuzzJoinTokenRequest(f *testing.F) {
	f.Add([]byte(`{"node":"fe1","role":"frontend","hosts":["127.0.0.2"],"ttl":"15m"}`))
	f.Add([]byte(`{"node":"fe1","role":"frontend","hosts":["::1","a.example"]}`))
	f.Add([]byte(`{"node":"","role":"x"}`))
	f.Add([]byte(`{"node":"a","role":"dns","ttl":"-1s"}`))
	f.Add([]byte(`{"node":"a","role":"dns","hosts":[""]}`))
	m, err := New(Config{Store: FileStore{Dir: f.TempDir()}, Operators: []Operator{{Name: "a", Role: RoleAdmin, KeyHash: HashKey(adminKey)}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest(http.MethodPost, "/v1/join-tokens", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminKey)
		rec := httptest.NewRecorder()
		m.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated && rec.Code != http.StatusBadRequest && rec.Code != http.StatusTooManyRequests {
			t.Fatalf("join token %q: %d %s", body, rec.Code, rec.Body)
		}
		m.mu.Lock()
		n := len(m.state.JoinTokens)
		m.mu.Unlock()
		if n > maxJoinTokens {
			t.Fatalf("%d join tokens outstanding, bound %d", n, maxJoinTokens)
		}
	})
}
