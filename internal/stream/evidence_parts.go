package stream

import "encoding/json"

// EvidencePart is the evidence of a run of consecutive events of a batch,
// in the same wire form as the whole (docs/tamper-evidence.md), so a
// receiver verifies each part as it would verify a webhook batch.
type EvidencePart struct {
	// Events is how many events, after those of the parts before, this
	// part proves.
	Events int
	JSON   json.RawMessage
}

// EvidenceParts is EvidenceRuns for destinations that keep the batch in
// one order and carry its evidence as separate records with a size limit
// (a syslog message, a Splunk event, a Sumo Logic line): consecutive runs
// of the batch, each with evidence of at most maxBytes (a lone event's may
// be over: there is no smaller piece). Evidence that fits is one part,
// unchanged. No evidence gives no parts.
func EvidenceParts(b Batch, maxBytes int) ([]EvidencePart, error) {
	if len(b.Evidence) == 0 {
		return nil, nil
	}
	all := make([]int, len(b.Events))
	for i := range all {
		all[i] = i
	}
	runs, evidence, err := EvidenceRuns(b, [][]int{all}, maxBytes)
	if err != nil {
		return nil, err
	}
	parts := make([]EvidencePart, len(runs))
	for i := range runs {
		parts[i] = EvidencePart{Events: len(runs[i]), JSON: evidence[i]}
	}
	return parts, nil
}
