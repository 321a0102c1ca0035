// kms-load: a KMS v2 load generator written the way kube-apiserver calls its plugin: grpc-go, one
// connection to the unix socket, unary Decrypt calls with a 3 s deadline each. The benchmarks use it so that
// the load generator costs on the box what the real client costs (a grpc-js client costs as much CPU per call
// as the servers it measures). Closed loop: `-concurrency` workers call back to back for `-seconds` after a
// warm-up; every plaintext is compared with the bytes it must be; the result is one JSON line on stdout.
//
// Built by bench/lib/go-client.js with Debian's Go packages (golang-go, golang-google-grpc-dev), GOPATH mode:
// no module download.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
)

// One Decrypt to make and the plaintext it must return.
type testCase struct {
	Ciphertext  []byte            `json:"ciphertext"`
	KeyID       string            `json:"keyId"`
	Annotations map[string][]byte `json:"annotations"`
	Expected    []byte            `json:"expected"`
}

type result struct {
	Calls        int     `json:"calls"`
	WarmupCalls  int     `json:"warmupCalls"`
	Errors       int     `json:"errors"`
	Wrong        int     `json:"wrong"`
	WrongSample  string  `json:"wrongSample,omitempty"`
	ErrorSample  string  `json:"errorSample,omitempty"`
	Rps          float64 `json:"rps"`
	P50          float64 `json:"p50"`
	P99          float64 `json:"p99"`
	CPUUsPerCall float64 `json:"clientCpuUsPerCall"`
}

// rawCodec passes bytes through: requests are encoded by hand below (three fields and a map), so the
// program needs no generated code.
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

var _ encoding.Codec = rawCodec{}

func appendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

func appendBytesField(b []byte, field int, v []byte) []byte {
	b = appendVarint(b, uint64(field<<3|2))
	b = appendVarint(b, uint64(len(v)))
	return append(b, v...)
}

// DecryptRequest: ciphertext = 1, uid = 2, key_id = 3, map<string, bytes> annotations = 4.
func decryptRequest(c testCase, uid string) []byte {
	var b []byte
	b = appendBytesField(b, 1, c.Ciphertext)
	b = appendBytesField(b, 2, []byte(uid))
	b = appendBytesField(b, 3, []byte(c.KeyID))
	for k, v := range c.Annotations {
		var entry []byte
		entry = appendBytesField(entry, 1, []byte(k))
		entry = appendBytesField(entry, 2, v)
		b = appendBytesField(b, 4, entry)
	}
	return b
}

// DecryptResponse: plaintext = 1 (the only field).
func plaintextOf(resp []byte) ([]byte, error) {
	i := 0
	for i < len(resp) {
		tag, n := readVarint(resp[i:])
		if n == 0 {
			return nil, fmt.Errorf("bad tag")
		}
		i += n
		if tag&7 != 2 {
			return nil, fmt.Errorf("unexpected wire type %d", tag&7)
		}
		l, m := readVarint(resp[i:])
		if m == 0 || i+m+int(l) > len(resp) {
			return nil, fmt.Errorf("bad length")
		}
		i += m
		if tag>>3 == 1 {
			return resp[i : i+int(l)], nil
		}
		i += int(l)
	}
	return []byte{}, nil
}

func readVarint(b []byte) (uint64, int) {
	var v uint64
	for i := 0; i < len(b) && i < 10; i++ {
		v |= uint64(b[i]&0x7f) << (7 * uint(i))
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	return 0, 0
}

func cpuMicros() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e3
}

func main() {
	socket := flag.String("socket", "", "the KMS v2 plugin's unix socket")
	casesFile := flag.String("cases", "", "JSON file: [{ciphertext, keyId, annotations, expected}] (bytes in base64)")
	concurrency := flag.Int("concurrency", 1, "calls in flight")
	seconds := flag.Float64("seconds", 5, "measured seconds")
	warmup := flag.Float64("warmup", 1, "warm-up seconds before measuring")
	flag.Parse()
	if *socket == "" || *casesFile == "" {
		fmt.Fprintln(os.Stderr, "usage: kms-load -socket PATH -cases FILE [-concurrency N] [-seconds S] [-warmup S]")
		os.Exit(2)
	}
	raw, err := os.ReadFile(*casesFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var cases []testCase
	if err := json.Unmarshal(raw, &cases); err != nil || len(cases) == 0 {
		fmt.Fprintln(os.Stderr, "cases file: need a non-empty JSON array", err)
		os.Exit(1)
	}
	requests := make([][]byte, len(cases))
	for i, c := range cases {
		requests[i] = decryptRequest(c, fmt.Sprintf("load-%d", i))
	}

	conn, err := grpc.Dial("unix://"+*socket, grpc.WithInsecure(), grpc.WithAuthority("localhost"),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *socket)
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer conn.Close()

	var mu sync.Mutex
	res := result{}
	var lat []float64
	run := func(d time.Duration, record bool) {
		end := time.Now().Add(d)
		var wg sync.WaitGroup
		var next int
		for w := 0; w < *concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []float64
				for time.Now().Before(end) {
					mu.Lock()
					i := next % len(cases)
					next++
					mu.Unlock()
					req := requests[i]
					var resp []byte
					t0 := time.Now()
					ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
					err := conn.Invoke(ctx, "/v2.KeyManagementService/Decrypt", &req, &resp, grpc.ForceCodec(rawCodec{}))
					cancel()
					took := float64(time.Since(t0).Nanoseconds()) / 1e6
					if !record {
						mu.Lock()
						res.WarmupCalls++
						mu.Unlock()
						continue
					}
					var pt []byte
					if err == nil {
						pt, err = plaintextOf(resp)
					}
					mu.Lock()
					switch {
					case err != nil:
						res.Errors++
						if res.ErrorSample == "" {
							res.ErrorSample = err.Error()
						}
					case !bytes.Equal(pt, cases[i].Expected):
						res.Wrong++
						if res.WrongSample == "" {
							res.WrongSample = fmt.Sprintf("Decrypt returned %d bytes that are not the expected plaintext", len(pt))
						}
					default:
						mine = append(mine, took)
					}
					mu.Unlock()
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
	}
	run(time.Duration(*warmup*float64(time.Second)), false)
	cpu0 := cpuMicros()
	t0 := time.Now()
	run(time.Duration(*seconds*float64(time.Second)), true)
	elapsed := time.Since(t0).Seconds()
	cpu := cpuMicros() - cpu0
	sort.Float64s(lat)
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		i := int(p / 100 * float64(len(lat)))
		if i >= len(lat) {
			i = len(lat) - 1
		}
		return lat[i]
	}
	res.Calls = len(lat)
	res.Rps = float64(len(lat)) / elapsed
	res.P50 = pct(50)
	res.P99 = pct(99)
	if len(lat) > 0 {
		res.CPUUsPerCall = cpu / float64(len(lat))
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}
