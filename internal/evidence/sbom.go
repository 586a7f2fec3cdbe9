package evidence

import (
	"strings"
	"time"

	"github.com/stellaops/stella/internal/record"
)

// ---- CycloneDX JSON (SBOM, or VEX when a vulnerability carries an analysis) ----

type cdxDoc struct {
	Components []cdxComponent `json:"components"`
	Metadata   struct {
		Component *cdxComponent `json:"component"`
		Timestamp string        `json:"timestamp"`
	} `json:"metadata"`
	SerialNumber    string    `json:"serialNumber"`
	Vulnerabilities []cdxVuln `json:"vulnerabilities"`
}

type cdxComponent struct {
	BOMRef     string         `json:"bom-ref"`
	Components []cdxComponent `json:"components"`
	Hashes     []struct {
		Alg     string `json:"alg"`
		Content string `json:"content"`
	} `json:"hashes"`
	Name    string `json:"name"`
	Purl    string `json:"purl"`
	Version string `json:"version"`
}

// eachComponent calls fn for every component, nested ones included, in
// document order.
func (doc *cdxDoc) eachComponent(fn func(*cdxComponent)) {
	var walk func([]cdxComponent)
	walk = func(cs []cdxComponent) {
		for i := range cs {
			fn(&cs[i])
			walk(cs[i].Components)
		}
	}
	walk(doc.Components)
}

func (d *docCtx) cycloneDX(js []byte) (*record.Parsed, *DocError) {
	var doc cdxDoc
	if err := d.decode(js, &doc, "CycloneDX"); err != nil {
		return nil, err
	}
	id := doc.SerialNumber
	if id == "" {
		id = "urn:sha256:" + strings.TrimPrefix(d.doc.Digest, "sha256:")
	}
	// CycloneDX times are informative here; one that is not RFC 3339 is ignored.
	modified, _ := parseTime(doc.Metadata.Timestamp, "timestamp")
	for _, v := range doc.Vulnerabilities {
		if v.Analysis != nil {
			return d.cycloneDXVEX(&doc, id, modified)
		}
	}
	subject := "unnamed"
	if c := doc.Metadata.Component; c != nil && c.Name != "" {
		subject = c.Name
		if c.Version != "" {
			subject += "@" + c.Version
		}
	}
	var comps []record.Component
	var purls []string
	doc.eachComponent(func(c *cdxComponent) {
		rc := record.Component{Name: c.Name, Purl: c.Purl, Version: c.Version}
		for _, h := range c.Hashes {
			if h.Alg == "SHA-1" && rc.SHA1 == "" {
				rc.SHA1 = strings.ToLower(h.Content)
			}
		}
		comps = append(comps, rc)
		purls = append(purls, c.Purl)
	})
	return sbomParsed("cyclonedx", id, subject, modified, comps, purls), nil
}

func sbomParsed(format, id, subject string, modified time.Time, comps []record.Component, purls []string) *record.Parsed {
	return &record.Parsed{
		Kind:       record.KindSBOM,
		Format:     format,
		ID:         id,
		Modified:   modified,
		Purls:      nilIfEmpty(sortedUnique(purls)),
		Subject:    subject,
		Components: comps,
	}
}

// ---- SPDX 2.x JSON ----

type spdxDoc struct {
	CreationInfo struct {
		Created string `json:"created"`
	} `json:"creationInfo"`
	DocumentNamespace string `json:"documentNamespace"`
	Name              string `json:"name"`
	Packages          []struct {
		Checksums []struct {
			Algorithm     string `json:"algorithm"`
			ChecksumValue string `json:"checksumValue"`
		} `json:"checksums"`
		ExternalRefs []struct {
			ReferenceLocator string `json:"referenceLocator"`
			ReferenceType    string `json:"referenceType"`
		} `json:"externalRefs"`
		Name        string `json:"name"`
		VersionInfo string `json:"versionInfo"`
	} `json:"packages"`
}

func (d *docCtx) spdx(js []byte) (*record.Parsed, *DocError) {
	var doc spdxDoc
	if err := d.decode(js, &doc, "SPDX"); err != nil {
		return nil, err
	}
	if doc.DocumentNamespace == "" {
		return nil, d.fail("SPDX: missing \"documentNamespace\"")
	}
	subject := doc.Name
	if subject == "" {
		subject = "unnamed"
	}
	modified, _ := parseTime(doc.CreationInfo.Created, "created")
	comps := make([]record.Component, 0, len(doc.Packages))
	var purls []string
	for _, p := range doc.Packages {
		c := record.Component{Name: p.Name, Version: p.VersionInfo}
		for _, r := range p.ExternalRefs {
			if r.ReferenceType == "purl" && c.Purl == "" {
				c.Purl = r.ReferenceLocator
			}
		}
		for _, s := range p.Checksums {
			if s.Algorithm == "SHA1" && c.SHA1 == "" {
				c.SHA1 = strings.ToLower(s.ChecksumValue)
			}
		}
		comps = append(comps, c)
		purls = append(purls, c.Purl)
	}
	return sbomParsed("spdx", doc.DocumentNamespace, subject, modified, comps, purls), nil
}
