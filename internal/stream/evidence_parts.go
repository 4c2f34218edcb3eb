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
	// Cut first into runs of an estimated size, a third under the average
	// share of the limit (each run repeats its checkpoints and upper
	// hashes), so that most runs are encoded once: EvidenceRuns alone
	// halves the whole batch until it fits, encoding it ~log2(parts)
	// times over.
	per := len(b.Events)
	if len(b.Evidence) > maxBytes {
		per = max(1, len(b.Events)*maxBytes*2/3/len(b.Evidence))
	}
	var groups [][]int
	for from := 0; from < len(b.Events); from += per {
		run := make([]int, 0, per)
		for i := from; i < min(from+per, len(b.Events)); i++ {
			run = append(run, i)
		}
		groups = append(groups, run)
	}
	runs, evidence, err := EvidenceRuns(b, groups, maxBytes)
	if err != nil {
		return nil, err
	}
	parts := make([]EvidencePart, len(runs))
	for i := range runs {
		parts[i] = EvidencePart{Events: len(runs[i]), JSON: evidence[i]}
	}
	return parts, nil
}
