package main

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// demoPort is one socket the demo will open.
type demoPort struct {
	network string // "tcp" or "udp"
	addr    string
	what    string
}

// checkPorts tries every socket the demo needs before it starts anything,
// so that a port in use fails the demo at once, naming the port and, when
// /proc tells, the program that holds it. (Otherwise a process that cannot
// bind dies in its own log, and the demo waits for it.)
func checkPorts(ports []demoPort) error {
	var taken []string
	for _, p := range ports {
		if p.addr == "" {
			continue
		}
		if err := tryBind(p.network, p.addr); err != nil {
			msg := fmt.Sprintf("%s %s (%s) is in use", p.network, p.addr, p.what)
			if who := portHolder(p.network, p.addr); who != "" {
				msg += " by " + who
			}
			taken = append(taken, msg)
		}
	}
	if len(taken) == 0 {
		return nil
	}
	return fmt.Errorf("%s\nstop that program, or move the demo's ports with -port-offset N (e.g. -port-offset 100)", strings.Join(taken, "\n"))
}

func tryBind(network, addr string) error {
	if network == "udp" {
		c, err := net.ListenPacket("udp", addr)
		if err == nil {
			c.Close()
		}
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err == nil {
		l.Close()
	}
	return err
}

// shiftPort adds offset to the port of a host:port address.
func shiftPort(addr string, offset int) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || offset == 0 {
		return addr
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return addr
	}
	return net.JoinHostPort(host, strconv.Itoa(n+offset))
}

// portHolder names the process holding a local socket, from /proc (Linux):
// the socket's inode in /proc/net/{tcp,udp}[6], then the process with a
// descriptor on it. It returns "" when it cannot tell (another OS, or
// another user's process that /proc does not show us).
func portHolder(network, addr string) string {
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return ""
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/" + network, "/proc/net/" + network + "6"} {
		for _, ino := range socketInodes(f, port, network == "tcp") {
			inodes[ino] = true
		}
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pid := strings.Split(fd, "/")[2]
			comm, _ := os.ReadFile("/proc/" + pid + "/comm")
			return fmt.Sprintf("%s (pid %s)", strings.TrimSpace(string(comm)), pid)
		}
	}
	return ""
}

// socketInodes reads a /proc/net table for sockets bound to port (only
// listening ones for TCP: state 0A).
func socketInodes(file string, port int, tcp bool) []string {
	f, err := os.Open(file)
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 {
			continue
		}
		_, hexPort, ok := strings.Cut(fields[1], ":")
		if !ok {
			continue
		}
		b, err := hex.DecodeString(hexPort)
		if err != nil || len(b) != 2 || int(b[0])<<8|int(b[1]) != port {
			continue
		}
		if tcp && fields[3] != "0A" {
			continue
		}
		out = append(out, fields[9])
	}
	return out
}
