package distribute

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
)

// memRegistry is the part of the OCI distribution API a push and a pull
// use (blob HEAD/GET, POST+PUT monolithic uploads, manifest PUT/HEAD/GET by
// tag or digest), in memory, with optional basic auth. Enough to test the
// client; the real registry is the e2e oracle (internal/e2e/registry_test.go).
type memRegistry struct {
	t          *testing.T
	user, pass string

	mu        sync.Mutex
	blobs     map[string][]byte            // digest -> bytes (global: one store for all repos)
	manifests map[string]map[string]string // repo -> tag or digest -> digest
	mtypes    map[string]string            // manifest digest -> media type
	uploads   map[string]bool
	puts      int // blob uploads completed
}

func newMemRegistry(t *testing.T) (*memRegistry, string) {
	r := &memRegistry{t: t, blobs: map[string][]byte{}, manifests: map[string]map[string]string{},
		mtypes: map[string]string{}, uploads: map[string]bool{}}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, strings.TrimPrefix(srv.URL, "http://")
}

func (r *memRegistry) ServeHTTP(w http.ResponseWriter, q *http.Request) {
	if r.user != "" {
		u, p, ok := q.BasicAuth()
		if !ok || u != r.user || p != r.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="mem"`)
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}
	p := q.URL.Path
	if p == "/v2/" || p == "/v2" {
		w.WriteHeader(http.StatusOK)
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case strings.Contains(p, "/blobs/uploads/"):
		repo := strings.TrimPrefix(p[:strings.Index(p, "/blobs/uploads/")], "/v2/")
		id := p[strings.Index(p, "/blobs/uploads/")+len("/blobs/uploads/"):]
		switch {
		case q.Method == http.MethodPost && id == "":
			b := make([]byte, 8)
			rand.Read(b)
			id = hex.EncodeToString(b)
			r.uploads[id] = true
			w.Header().Set("Location", "/v2/"+repo+"/blobs/uploads/"+id)
			w.WriteHeader(http.StatusAccepted)
		case q.Method == http.MethodPut && r.uploads[id]:
			body, _ := io.ReadAll(q.Body)
			want := q.URL.Query().Get("digest")
			if digest.FromBytes(body).String() != want {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `{"errors":[{"code":"DIGEST_INVALID","message":"digest mismatch"}]}`)
				return
			}
			delete(r.uploads, id)
			r.blobs[want] = body
			r.puts++
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+want)
			w.Header().Set("Docker-Content-Digest", want)
			w.WriteHeader(http.StatusCreated)
		default:
			w.WriteHeader(http.StatusNotFound)
		}
	case strings.Contains(p, "/blobs/"):
		d := p[strings.LastIndex(p, "/")+1:]
		b, ok := r.blobs[d]
		if !ok || (q.Method != http.MethodGet && q.Method != http.MethodHead) {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Header().Set("Docker-Content-Digest", d)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.WriteHeader(http.StatusOK)
		if q.Method == http.MethodGet {
			w.Write(b)
		}
	case strings.Contains(p, "/manifests/"):
		i := strings.LastIndex(p, "/manifests/")
		repo, ref := strings.TrimPrefix(p[:i], "/v2/"), p[i+len("/manifests/"):]
		switch q.Method {
		case http.MethodPut:
			body, _ := io.ReadAll(q.Body)
			d := digest.FromBytes(body).String()
			r.blobs[d] = body
			r.mtypes[d] = q.Header.Get("Content-Type")
			if r.manifests[repo] == nil {
				r.manifests[repo] = map[string]string{}
			}
			r.manifests[repo][ref] = d
			r.manifests[repo][d] = d
			w.Header().Set("Docker-Content-Digest", d)
			w.Header().Set("Location", "/v2/"+repo+"/manifests/"+d)
			w.WriteHeader(http.StatusCreated)
		case http.MethodGet, http.MethodHead:
			d, ok := r.manifests[repo][ref]
			if !ok {
				w.WriteHeader(http.StatusNotFound)
				io.WriteString(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`)
				return
			}
			b := r.blobs[d]
			w.Header().Set("Content-Type", r.mtypes[d])
			w.Header().Set("Docker-Content-Digest", d)
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.WriteHeader(http.StatusOK)
			if q.Method == http.MethodGet {
				w.Write(b)
			}
		default:
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	default:
		w.WriteHeader(http.StatusNotFound)
	}
}

// manifest returns the bytes a repo's tag points at.
func (r *memRegistry) manifest(repo, tag string) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobs[r.manifests[repo][tag]]
}
