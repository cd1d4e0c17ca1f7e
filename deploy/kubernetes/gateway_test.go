package kubernetes

import (
	"path/filepath"
	"slices"
	"testing"

	"sigs.k8s.io/yaml"
)

// route is what the tests read of gateway/httproute.yaml: the fields this
// project sets, decoded strictly (k8s.io/api has no Gateway API types, and
// the module takes no dependency for one file).
type route struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		ParentRefs []struct{ Name, Namespace string } `json:"parentRefs"`
		Rules      []struct {
			Matches []struct {
				Method string                       `json:"method"`
				Path   struct{ Type, Value string } `json:"path"`
			} `json:"matches"`
			Filters []struct {
				Type         string                             `json:"type"`
				ExtensionRef struct{ Group, Kind, Name string } `json:"extensionRef"`
			} `json:"filters"`
			BackendRefs []struct {
				Group string `json:"group"`
				Kind  string `json:"kind"`
				Name  string `json:"name"`
			} `json:"backendRefs"`
		} `json:"rules"`
	} `json:"spec"`
}

func TestTheRouteRetriesOnlyIdempotentMethods(t *testing.T) {
	var r route
	if err := yaml.UnmarshalStrict([]byte(read(t, "deploy/kubernetes/gateway/httproute.yaml")), &r); err != nil {
		t.Fatal(err)
	}
	m, err := load(".")
	if err != nil {
		t.Fatal(err)
	}
	if r.APIVersion != "gateway.networking.k8s.io/v1" || r.Kind != "HTTPRoute" || r.Metadata.Namespace != m.namespace.Name {
		t.Errorf("%s %s in %q: want a gateway.networking.k8s.io/v1 HTTPRoute in %s", r.APIVersion, r.Kind, r.Metadata.Namespace, m.namespace.Name)
	}
	if len(r.Spec.Rules) != 2 {
		t.Fatalf("%d rules, want 2: the idempotent methods with retries, the rest without", len(r.Spec.Rules))
	}
	for i, rule := range r.Spec.Rules {
		if b := rule.BackendRefs; len(b) != 1 || b[0].Group != "traefik.io" || b[0].Kind != "TraefikService" || b[0].Name != m.service.Name {
			t.Errorf("rule %d sends to %v, want the TraefikService %s", i, b, m.service.Name)
		}
		for _, match := range rule.Matches {
			if match.Path.Type != "PathPrefix" || match.Path.Value != "/" {
				t.Errorf("rule %d matches path %v, want every path (PathPrefix /)", i, match.Path)
			}
		}
	}
	var methods []string
	for _, match := range r.Spec.Rules[0].Matches {
		methods = append(methods, match.Method)
	}
	// RFC 9110, 9.2.2: a request with one of these methods may be sent again.
	idempotent := []string{"DELETE", "GET", "HEAD", "OPTIONS", "PUT", "TRACE"}
	if slices.Sort(methods); !slices.Equal(methods, idempotent) {
		t.Errorf("the retrying rule matches %v, want exactly the idempotent methods %v", methods, idempotent)
	}
	f := r.Spec.Rules[0].Filters
	if len(f) != 1 || f[0].Type != "ExtensionRef" || f[0].ExtensionRef.Group != "traefik.io" || f[0].ExtensionRef.Kind != "Middleware" || f[0].ExtensionRef.Name != "retry" {
		t.Errorf("the idempotent rule's filters %v: want the Traefik Middleware retry", f)
	}
	if rest := r.Spec.Rules[1]; len(rest.Filters) != 0 || len(rest.Matches) != 1 || rest.Matches[0].Method != "" {
		t.Errorf("the other rule: matches %v, filters %v; want every method, no retry", rest.Matches, rest.Filters)
	}

	var retry struct {
		Kind string `json:"kind"`
		Spec struct {
			Retry struct{ Attempts int } `json:"retry"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(read(t, "deploy/kubernetes/gateway/retry.yaml")), &retry); err != nil {
		t.Fatal(err)
	}
	// With 2 of 3 pods lost, Traefik's round robin can meet a lost one up
	// to 4 times in a row (retry.yaml).
	if retry.Kind != "Middleware" || retry.Spec.Retry.Attempts < 5 {
		t.Errorf("retry.yaml: %s with %d attempts, want a Middleware with at least 5", retry.Kind, retry.Spec.Retry.Attempts)
	}
	// The TraefikService: the Service's port, a pod Traefik cannot reach
	// out of the round robin at its first failure, for a while.
	var ts struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			Weighted struct {
				Services []struct {
					Name               string `json:"name"`
					Port               int32  `json:"port"`
					PassiveHealthCheck *struct {
						MaxFailedAttempts int    `json:"maxFailedAttempts"`
						FailureWindow     string `json:"failureWindow"`
					} `json:"passiveHealthCheck"`
				} `json:"services"`
			} `json:"weighted"`
		} `json:"spec"`
	}
	if err := yaml.UnmarshalStrict([]byte(read(t, "deploy/kubernetes/gateway/traefikservice.yaml")), &ts); err != nil {
		t.Fatal(err)
	}
	services := ts.Spec.Weighted.Services
	if ts.APIVersion != "traefik.io/v1alpha1" || ts.Kind != "TraefikService" || ts.Metadata.Name != m.service.Name || ts.Metadata.Namespace != m.namespace.Name || len(services) != 1 {
		t.Fatalf("traefikservice.yaml: %s %s/%s with %d services, want the TraefikService %s/%s of one", ts.Kind, ts.Metadata.Namespace, ts.Metadata.Name, len(services), m.namespace.Name, m.service.Name)
	}
	if s := services[0]; s.Name != m.service.Name || s.Port != m.service.Spec.Ports[0].Port || s.PassiveHealthCheck == nil || s.PassiveHealthCheck.MaxFailedAttempts != 1 || s.PassiveHealthCheck.FailureWindow == "" {
		t.Errorf("traefikservice.yaml sends to %s port %d, passive health check %+v; want the Service %s port %d, a pod out at its first failure for a window", s.Name, s.Port, s.PassiveHealthCheck, m.service.Name, m.service.Spec.Ports[0].Port)
	}
	var k struct{ Resources []string }
	if err := yaml.Unmarshal([]byte(read(t, "deploy/kubernetes/gateway/Kustomization")), &k); err != nil {
		t.Fatal(err)
	}
	yamls, _ := filepath.Glob("gateway/*.yaml")
	for i := range yamls {
		yamls[i] = filepath.Base(yamls[i])
	}
	if slices.Sort(k.Resources); !slices.Equal(k.Resources, yamls) {
		t.Errorf("gateway/Kustomization resources %v, want its manifests %v", k.Resources, yamls)
	}
}
