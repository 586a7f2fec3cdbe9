package evidence

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/stellaops/stella/internal/record"
)

// VEX statuses of the normalised records.
const (
	StatusNotAffected        = "not_affected"
	StatusAffected           = "affected"
	StatusFixed              = "fixed"
	StatusUnderInvestigation = "under_investigation"
)

func validStatus(s string) bool {
	switch s {
	case StatusNotAffected, StatusAffected, StatusFixed, StatusUnderInvestigation:
		return true
	}
	return false
}

// vexBuilder collects the statements of one VEX document. Statement ids are
// <document>#<vulnerability>#<product>, plus #<subcomponent> for an OpenVEX
// statement about a subcomponent of a product. When a document states the
// same id twice, the statement with the newer time wins, and on a tie the
// later one (OpenVEX: a later statement supersedes an earlier one).
type vexBuilder struct {
	d        *docCtx
	format   string
	docID    string
	modified time.Time
	stmts    []record.VEXStatement
	times    []time.Time
	index    map[string]int
	products []string
}

func newVEXBuilder(d *docCtx, format, docID string, modified time.Time) *vexBuilder {
	return &vexBuilder{d: d, format: format, docID: docID, modified: modified, index: map[string]int{}}
}

type vexInput struct {
	vuln          string
	aliases       []string
	product       string
	subcomponent  string
	status        string
	justification string
	statement     string
	modified      time.Time // zero: the document's time
}

func (b *vexBuilder) add(in vexInput) {
	id := b.docID + "#" + in.vuln + "#" + in.product
	if in.subcomponent != "" {
		id += "#" + in.subcomponent
		b.products = append(b.products, in.subcomponent)
	}
	b.products = append(b.products, in.product)
	t := in.modified
	if t.IsZero() {
		t = b.modified
	}
	st := record.VEXStatement{
		Aliases:       nilIfEmpty(sortedUnique(in.aliases)),
		Digest:        b.d.doc.Digest,
		DocumentID:    b.docID,
		Format:        b.format,
		ID:            id,
		Justification: in.justification,
		Modified:      record.Time(t),
		Path:          b.d.doc.Path,
		Product:       in.product,
		Source:        b.d.doc.Source,
		Status:        in.status,
		Statement:     in.statement,
		Vulnerability: in.vuln,
	}
	if i, ok := b.index[id]; ok {
		if !t.Before(b.times[i]) {
			b.stmts[i], b.times[i] = st, t
		}
		return
	}
	b.index[id] = len(b.stmts)
	b.stmts = append(b.stmts, st)
	b.times = append(b.times, t)
}

func (b *vexBuilder) parsed() *record.Parsed {
	products := sortedUnique(b.products)
	var purls []string
	for _, p := range products {
		if strings.HasPrefix(p, "pkg:") {
			purls = append(purls, p)
		}
	}
	return &record.Parsed{
		Kind:       record.KindVEX,
		Format:     b.format,
		ID:         b.docID,
		Modified:   b.modified,
		Purls:      purls,
		Products:   nilIfEmpty(products),
		Statements: b.stmts,
	}
}

// ---- OpenVEX (v0.0.1 and v0.2.0, JSON or YAML) ----

type openVEXDoc struct {
	ID          jsonText      `json:"@id"`
	LastUpdated string        `json:"last_updated"`
	Statements  []ovStatement `json:"statements"`
	Timestamp   string        `json:"timestamp"`
}

type ovStatement struct {
	ActionStatement string      `json:"action_statement"`
	ImpactStatement string      `json:"impact_statement"`
	Justification   string      `json:"justification"`
	LastUpdated     string      `json:"last_updated"`
	Products        []ovProduct `json:"products"`
	Status          string      `json:"status"`
	StatusNotes     string      `json:"status_notes"`
	Subcomponents   []ovProduct `json:"subcomponents"` // v0.0.1: statement-level
	Timestamp       string      `json:"timestamp"`
	Vulnerability   ovVuln      `json:"vulnerability"`
}

// ovVuln is a vulnerability: a string (v0.0.1) or an object with name,
// @id and aliases (v0.2.0).
type ovVuln struct {
	Name    string
	Aliases []string
}

func (v *ovVuln) UnmarshalJSON(b []byte) error {
	switch firstByte(b) {
	case '"':
		return json.Unmarshal(b, &v.Name)
	case '{':
		var o struct {
			Aliases []string `json:"aliases"`
			ID      string   `json:"@id"`
			Name    string   `json:"name"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return fmt.Errorf("vulnerability: %v", err)
		}
		v.Name, v.Aliases = o.Name, o.Aliases
		if v.Name == "" {
			v.Name = o.ID
		}
		return nil
	case 'n':
		return nil
	}
	return fmt.Errorf("vulnerability must be a string or an object")
}

// ovProduct is a product or subcomponent: a string (v0.0.1) or an object
// with @id, identifiers and subcomponents (v0.2.0).
type ovProduct struct {
	ID            string
	Subcomponents []ovProduct
}

func (p *ovProduct) UnmarshalJSON(b []byte) error {
	switch firstByte(b) {
	case '"':
		return json.Unmarshal(b, &p.ID)
	case '{':
		var o struct {
			ID          string `json:"@id"`
			Identifiers struct {
				CPE22 string `json:"cpe22"`
				CPE23 string `json:"cpe23"`
				Purl  string `json:"purl"`
			} `json:"identifiers"`
			Subcomponents []ovProduct `json:"subcomponents"`
		}
		if err := json.Unmarshal(b, &o); err != nil {
			return fmt.Errorf("product: %v", err)
		}
		p.ID, p.Subcomponents = o.ID, o.Subcomponents
		for _, alt := range []string{o.Identifiers.Purl, o.Identifiers.CPE23, o.Identifiers.CPE22} {
			if p.ID == "" {
				p.ID = alt
			}
		}
		return nil
	}
	return fmt.Errorf("product must be a string or an object")
}

func (d *docCtx) openVEX(js []byte) (*record.Parsed, *DocError) {
	var doc openVEXDoc
	if err := d.decode(js, &doc, "OpenVEX"); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*record.Parsed, *DocError) {
		return nil, d.fail("OpenVEX: "+format, args...)
	}
	if !doc.ID.IsStr || doc.ID.Str == "" {
		return fail("missing \"@id\"")
	}
	ts, err := parseTime(doc.Timestamp, "timestamp")
	if err != nil {
		return fail("%v", err)
	}
	lu, err := parseTime(doc.LastUpdated, "last_updated")
	if err != nil {
		return fail("%v", err)
	}
	modified := later(ts, lu)
	times := make([]time.Time, len(doc.Statements))
	for i, s := range doc.Statements {
		sts, err := parseTime(s.Timestamp, "timestamp")
		if err != nil {
			return fail("statements[%d]: %v", i, err)
		}
		slu, err := parseTime(s.LastUpdated, "last_updated")
		if err != nil {
			return fail("statements[%d]: %v", i, err)
		}
		times[i] = later(sts, slu)
	}
	if modified.IsZero() { // no document time: the newest statement time
		for _, t := range times {
			modified = later(modified, t)
		}
	}
	b := newVEXBuilder(d, "openvex", doc.ID.Str, modified)
	for i, s := range doc.Statements {
		switch {
		case s.Vulnerability.Name == "":
			return fail("statements[%d] has no vulnerability name", i)
		case s.Status == "":
			return fail("statements[%d] (%s) has no status", i, s.Vulnerability.Name)
		case !validStatus(s.Status):
			return fail("statements[%d] (%s): unknown status %q (not_affected, affected, fixed or under_investigation)", i, s.Vulnerability.Name, s.Status)
		case len(s.Products) == 0:
			return fail("statements[%d] (%s) has no products", i, s.Vulnerability.Name)
		}
		text := firstNonEmpty(s.StatusNotes, s.ImpactStatement, s.ActionStatement)
		switch s.Status {
		case StatusNotAffected:
			text = firstNonEmpty(s.ImpactStatement, text)
		case StatusAffected:
			text = firstNonEmpty(s.ActionStatement, text)
		}
		for j, p := range s.Products {
			if p.ID == "" {
				return fail("statements[%d].products[%d] has no @id or identifiers", i, j)
			}
			subs := append(append([]ovProduct(nil), p.Subcomponents...), s.Subcomponents...)
			in := vexInput{vuln: s.Vulnerability.Name, aliases: s.Vulnerability.Aliases, product: p.ID,
				status: s.Status, justification: s.Justification, statement: text, modified: times[i]}
			if len(subs) == 0 {
				b.add(in)
				continue
			}
			for k, sc := range subs {
				if sc.ID == "" {
					return fail("statements[%d].products[%d]: subcomponent %d has no @id or identifiers", i, j, k)
				}
				in.subcomponent = sc.ID
				b.add(in)
			}
		}
	}
	return b.parsed(), nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// ---- CSAF 2.0 (csaf_vex, csaf_security_advisory) ----

// csafHeader is the probe of a CSAF "document" object.
type csafHeader struct {
	Set         bool
	CSAFVersion jsonText
	Category    jsonText
}

// UnmarshalJSONFrom is UnmarshalJSON for the fast decoder.
func (h *csafHeader) UnmarshalJSONFrom(dec *jsontext.Decoder) error {
	v, err := dec.ReadValue()
	if err != nil {
		return err
	}
	return h.UnmarshalJSON(v)
}

func (h *csafHeader) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	h.Set = true
	if firstByte(b) != '{' {
		return nil
	}
	var v struct {
		Category    jsonText `json:"category"`
		CSAFVersion jsonText `json:"csaf_version"`
	}
	if json.Unmarshal(b, &v) == nil {
		h.Category, h.CSAFVersion = v.Category, v.CSAFVersion
	}
	return nil
}

type csafDoc struct {
	Document struct {
		Tracking struct {
			CurrentReleaseDate string `json:"current_release_date"`
			ID                 string `json:"id"`
		} `json:"tracking"`
	} `json:"document"`
	ProductTree struct {
		Branches         []csafBranch  `json:"branches"`
		FullProductNames []csafProduct `json:"full_product_names"`
		ProductGroups    []struct {
			GroupID    string   `json:"group_id"`
			ProductIDs []string `json:"product_ids"`
		} `json:"product_groups"`
		Relationships []struct {
			FullProductName csafProduct `json:"full_product_name"`
		} `json:"relationships"`
	} `json:"product_tree"`
	Vulnerabilities []csafVuln `json:"vulnerabilities"`
}

type csafBranch struct {
	Branches []csafBranch `json:"branches"`
	Product  *csafProduct `json:"product"`
}

type csafProduct struct {
	Helper struct {
		Purl string `json:"purl"`
	} `json:"product_identification_helper"`
	ProductID string `json:"product_id"`
}

// csafRef is a flag, threat or remediation: something said about products.
type csafRef struct {
	Category   string   `json:"category"`
	Details    string   `json:"details"`
	GroupIDs   []string `json:"group_ids"`
	Label      string   `json:"label"`
	ProductIDs []string `json:"product_ids"`
}

type csafVuln struct {
	CVE string `json:"cve"`
	IDs []struct {
		Text string `json:"text"`
	} `json:"ids"`
	Flags         []csafRef `json:"flags"`
	ProductStatus struct {
		FirstAffected      []string `json:"first_affected"`
		FirstFixed         []string `json:"first_fixed"`
		Fixed              []string `json:"fixed"`
		KnownAffected      []string `json:"known_affected"`
		KnownNotAffected   []string `json:"known_not_affected"`
		LastAffected       []string `json:"last_affected"`
		UnderInvestigation []string `json:"under_investigation"`
	} `json:"product_status"`
	Remediations []csafRef `json:"remediations"`
	Threats      []csafRef `json:"threats"`
}

func (d *docCtx) csaf(js []byte, h *csafHeader) (*record.Parsed, *DocError) {
	switch {
	case !h.CSAFVersion.Set:
		return nil, d.fail("not an evidence document: has a \"document\" object without \"csaf_version\"")
	case h.CSAFVersion.Str != "2.0":
		return nil, d.fail("CSAF version %q is not supported (CSAF 2.0 is)", h.CSAFVersion.Str)
	}
	switch cat := h.Category.Str; cat {
	case "csaf_vex", "csaf_security_advisory":
	default:
		return nil, d.fail("CSAF document category %q has no product status; only csaf_vex and csaf_security_advisory are read", cat)
	}
	var doc csafDoc
	if err := d.decode(js, &doc, "CSAF"); err != nil {
		return nil, err
	}
	fail := func(format string, args ...any) (*record.Parsed, *DocError) {
		return nil, d.fail("CSAF: "+format, args...)
	}
	if doc.Document.Tracking.ID == "" {
		return fail("missing document.tracking.id")
	}
	modified, err := parseTime(doc.Document.Tracking.CurrentReleaseDate, "current_release_date")
	if err != nil {
		return fail("document.tracking: %v", err)
	}
	// product_id -> purl, from every place a product is defined.
	purls := map[string]string{}
	addProduct := func(p *csafProduct) {
		if p != nil && p.ProductID != "" && p.Helper.Purl != "" {
			purls[p.ProductID] = p.Helper.Purl
		}
	}
	var walk func([]csafBranch)
	walk = func(bs []csafBranch) {
		for i := range bs {
			addProduct(bs[i].Product)
			walk(bs[i].Branches)
		}
	}
	walk(doc.ProductTree.Branches)
	for i := range doc.ProductTree.FullProductNames {
		addProduct(&doc.ProductTree.FullProductNames[i])
	}
	for i := range doc.ProductTree.Relationships {
		addProduct(&doc.ProductTree.Relationships[i].FullProductName)
	}
	groups := map[string][]string{}
	for _, g := range doc.ProductTree.ProductGroups {
		groups[g.GroupID] = append(groups[g.GroupID], g.ProductIDs...)
	}
	// about returns, per product id, the first of refs that names it.
	about := func(refs []csafRef, keep func(csafRef) bool) map[string]csafRef {
		m := map[string]csafRef{}
		for _, r := range refs {
			if !keep(r) {
				continue
			}
			ids := r.ProductIDs
			for _, g := range r.GroupIDs {
				ids = append(ids[:len(ids):len(ids)], groups[g]...)
			}
			for _, id := range ids {
				if _, ok := m[id]; !ok {
					m[id] = r
				}
			}
		}
		return m
	}
	b := newVEXBuilder(d, "csaf-vex", doc.Document.Tracking.ID, modified)
	for i, v := range doc.Vulnerabilities {
		name := v.CVE
		var aliases []string
		for _, id := range v.IDs {
			if name == "" {
				name = id.Text
			} else if id.Text != name {
				aliases = append(aliases, id.Text)
			}
		}
		if name == "" {
			return fail("vulnerabilities[%d] has neither \"cve\" nor \"ids\"", i)
		}
		flags := about(v.Flags, func(r csafRef) bool { return r.Label != "" })
		impacts := about(v.Threats, func(r csafRef) bool { return r.Category == "impact" })
		fixes := about(v.Remediations, func(r csafRef) bool { return r.Details != "" })
		ps := v.ProductStatus
		for _, group := range []struct {
			status string
			ids    []string
		}{
			{StatusNotAffected, ps.KnownNotAffected},
			{StatusAffected, ps.KnownAffected},
			{StatusAffected, ps.FirstAffected},
			{StatusAffected, ps.LastAffected},
			{StatusFixed, ps.Fixed},
			{StatusFixed, ps.FirstFixed},
			{StatusUnderInvestigation, ps.UnderInvestigation},
		} {
			for _, pid := range group.ids {
				if pid == "" {
					continue
				}
				product := pid
				if p := purls[pid]; p != "" {
					product = p
				}
				in := vexInput{vuln: name, aliases: aliases, product: product, status: group.status}
				if group.status == StatusNotAffected {
					in.justification = flags[pid].Label
					in.statement = impacts[pid].Details
				} else {
					in.statement = fixes[pid].Details
				}
				b.add(in)
			}
		}
	}
	return b.parsed(), nil
}

// ---- CycloneDX VEX ----

type cdxAffect struct {
	Ref string `json:"ref"`
}

type cdxVuln struct {
	Affects  []cdxAffect `json:"affects"`
	Analysis *struct {
		Detail        string `json:"detail"`
		Justification string `json:"justification"`
		State         string `json:"state"`
	} `json:"analysis"`
	ID         string `json:"id"`
	Published  string `json:"published"`
	References []struct {
		ID string `json:"id"`
	} `json:"references"`
	Updated string `json:"updated"`
}

// cdxStatus maps a CycloneDX analysis state to a VEX status.
var cdxStatus = map[string]string{
	"not_affected":           StatusNotAffected,
	"false_positive":         StatusNotAffected,
	"exploitable":            StatusAffected,
	"resolved":               StatusFixed,
	"resolved_with_pedigree": StatusFixed,
	"in_triage":              StatusUnderInvestigation,
}

func (d *docCtx) cycloneDXVEX(doc *cdxDoc, id string, modified time.Time) (*record.Parsed, *DocError) {
	fail := func(format string, args ...any) (*record.Parsed, *DocError) {
		return nil, d.fail("CycloneDX VEX: "+format, args...)
	}
	refs := map[string]string{} // bom-ref -> purl
	subject := ""               // the BOM's own component, for a vulnerability without affects[]
	if c := doc.Metadata.Component; c != nil {
		if c.BOMRef != "" && c.Purl != "" {
			refs[c.BOMRef] = c.Purl
		}
		subject = firstNonEmpty(c.Purl, c.BOMRef)
	}
	doc.eachComponent(func(c *cdxComponent) {
		if c.BOMRef != "" && c.Purl != "" {
			refs[c.BOMRef] = c.Purl
		}
	})
	b := newVEXBuilder(d, "cyclonedx-vex", id, modified)
	for i, v := range doc.Vulnerabilities {
		if v.Analysis == nil {
			continue // a plain vulnerability listing, not a VEX statement
		}
		switch {
		case v.ID == "":
			return fail("vulnerabilities[%d] has no \"id\"", i)
		case v.Analysis.State == "":
			return fail("vulnerabilities[%d] (%s): analysis has no \"state\"", i, v.ID)
		case cdxStatus[v.Analysis.State] == "":
			return fail("vulnerabilities[%d] (%s): unknown analysis state %q", i, v.ID, v.Analysis.State)
		}
		up, err := parseTime(v.Updated, "updated")
		if err != nil {
			up = time.Time{} // CycloneDX times are informative; an odd one is ignored
		}
		var aliases []string
		for _, r := range v.References {
			if r.ID != v.ID {
				aliases = append(aliases, r.ID)
			}
		}
		affects := v.Affects
		if len(affects) == 0 && subject != "" {
			// No affects[]: the statement is about the BOM's own component.
			affects = []cdxAffect{{Ref: subject}}
		}
		// Without affects[] and without metadata.component the statement
		// names no product (e.g. "no current product is affected"): it
		// yields no normalised statement; the raw document is still kept.
		for j, a := range affects {
			if a.Ref == "" {
				return fail("vulnerabilities[%d] (%s): affects[%d] has no \"ref\"", i, v.ID, j)
			}
			product := a.Ref
			if p := refs[a.Ref]; p != "" {
				product = p
			}
			b.add(vexInput{vuln: v.ID, aliases: aliases, product: product, status: cdxStatus[v.Analysis.State],
				justification: v.Analysis.Justification, statement: v.Analysis.Detail, modified: up})
		}
	}
	return b.parsed(), nil
}
