package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/conductor-edge/conductor/internal/bearer"
	"github.com/conductor-edge/conductor/shifting"
)

// runBundle runs `conductor bundle …`: build, push and keygen.
func runBundle(args []string) int {
	usage := func() int {
		fmt.Fprintln(os.Stderr, `usage: conductor bundle build DIR [-o FILE] [-key KEYFILE] [-rollback-from VERSION]
       conductor bundle push FILE -manager URL -key ADMIN_KEY [-ca PEMFILE]
       conductor bundle keygen -o KEYFILE     (prints the public key for signing_key)`)
		return 2
	}
	if len(args) == 0 {
		return usage()
	}
	switch args[0] {
	case "build":
		fs := flag.NewFlagSet("conductor bundle build", flag.ContinueOnError)
		out := fs.String("o", "", "bundle file (default: <site>-<version>.bundle)")
		keyFile := fs.String("key", "", "sign with this Ed25519 private key (hex, from keygen); nodes refuse unsigned bundles unless insecure_unsigned")
		rollbackFrom := fs.String("rollback-from", "", "build a rollback: this bundle (an older version) replaces version N, which nodes then accept")
		if len(args) < 2 {
			return usage()
		}
		dir := args[1]
		if err := fs.Parse(args[2:]); err != nil {
			return 2
		}
		var key ed25519.PrivateKey
		if *rollbackFrom != "" && *keyFile == "" {
			fmt.Fprintln(os.Stderr, "bundle: -rollback-from needs -key: nodes take a rollback only when it is signed")
			return 1
		}
		if *keyFile != "" {
			b, err := os.ReadFile(*keyFile)
			if err == nil {
				key, err = hex.DecodeString(strings.TrimSpace(string(b)))
			}
			if err != nil || len(key) != ed25519.PrivateKeySize {
				fmt.Fprintln(os.Stderr, "bundle: -key: not a hex Ed25519 private key:", err)
				return 1
			}
		}
		data, digest, sig, err := shifting.Build(dir, key, *rollbackFrom)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		v, _ := shifting.Verify(data, digest, sig, nil)
		if *out == "" {
			*out = v.Manifest.Site + "-" + v.Manifest.Version + ".bundle"
		}
		err = os.WriteFile(*out, data, 0o644)
		if err == nil && sig != nil {
			err = os.WriteFile(*out+".sig", []byte(hex.EncodeToString(sig)+"\n"), 0o644)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("%s\t%s %s\t%d files\t%s\n", *out, v.Manifest.Site, v.Manifest.Version, len(v.Manifest.Files), digest)
		return 0
	case "push":
		fs := flag.NewFlagSet("conductor bundle push", flag.ContinueOnError)
		manager := fs.String("manager", "", "manager URL")
		key := fs.String("key", os.Getenv("CONDUCTOR_ADMIN_KEY"), "an operator key with the admin role (default: $CONDUCTOR_ADMIN_KEY)")
		caFile := fs.String("ca", "", "trust this CA (PEM) for the manager's HTTPS certificate")
		if len(args) < 2 {
			return usage()
		}
		file := args[1]
		if err := fs.Parse(args[2:]); err != nil || *manager == "" {
			return usage()
		}
		if err := bearer.CheckURL(*manager); err != nil {
			fmt.Fprintln(os.Stderr, "bundle: -manager", err)
			return 1
		}
		data, err := os.ReadFile(file)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		sig, _ := os.ReadFile(file + ".sig")
		req, _ := http.NewRequest(http.MethodPost, strings.TrimSuffix(*manager, "/")+"/v1/bundles", bytes.NewReader(data))
		req.Header.Set("X-Bundle-Digest", shifting.Digest(data))
		req.Header.Set("X-Bundle-Signature", strings.TrimSpace(string(sig)))
		if *key != "" {
			req.Header.Set("Authorization", "Bearer "+*key)
		}
		client := http.DefaultClient
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			pool := x509.NewCertPool()
			if err != nil || !pool.AppendCertsFromPEM(pem) {
				fmt.Fprintln(os.Stderr, "bundle: -ca: no PEM certificate in", *caFile)
				return 1
			}
			client = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
		}
		resp, err := client.Do(req)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			fmt.Fprintf(os.Stderr, "manager refused the bundle: %s: %s", resp.Status, body)
			return 1
		}
		fmt.Printf("%s", body)
		return 0
	case "keygen":
		fs := flag.NewFlagSet("conductor bundle keygen", flag.ContinueOnError)
		out := fs.String("o", "", "private key file")
		if err := fs.Parse(args[1:]); err != nil || *out == "" {
			return usage()
		}
		pub, priv, err := ed25519.GenerateKey(nil)
		if err == nil {
			err = os.WriteFile(*out, []byte(hex.EncodeToString(priv)+"\n"), 0o600)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(hex.EncodeToString(pub))
		return 0
	}
	return usage()
}
