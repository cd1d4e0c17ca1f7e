package results

import (
	"encoding/json"
	"testing"
)

// The names on the wire are what replicas -json has always printed: make
// bench, and anyone's script, reads them.
func TestRestartJSON(t *testing.T) {
	b, err := json.Marshal(Restart{Replicas: 3, Seconds: 12.5, Clients: 4, Requests: 100, Failed: 1, FirstAnswer: []float64{1.5}})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"replicas":3,"seconds":12.5,"clients":4,"requests":100,"failed":1,"first_answer_seconds":[1.5]}`
	if string(b) != want {
		t.Errorf("%s\nwant %s", b, want)
	}
}
