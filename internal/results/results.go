// Package results declares, once, what a tool prints as data (-json) and
// another reads: make bench reads make rolling-restart's figures this way,
// never its sentences.
package results

// Restart is a rolling restart in figures, as replicas -json rolling-restart
// prints it.
type Restart struct {
	Replicas int     `json:"replicas"`
	Seconds  float64 `json:"seconds"`
	Clients  int     `json:"clients"`
	Requests int     `json:"requests"`
	Failed   int     `json:"failed"`
	// Each new replica's start to its first answer through the balancer.
	FirstAnswer []float64 `json:"first_answer_seconds"`
}
