package kubernetes

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"
)

// The repository root, where http.go, Dockerfile and .env are.
const root = "../.."

// manifests are the objects of every YAML file here, decoded strictly.
type manifests struct {
	namespace  *corev1.Namespace
	deployment *appsv1.Deployment
	service    *corev1.Service
	pdb        *policyv1.PodDisruptionBudget
	policy     *networkingv1.NetworkPolicy
	hpa        *autoscalingv2.HorizontalPodAutoscaler
	files      []string // the files' names
}

// load decodes every document of every *.yaml file in dir into its
// k8s.io/api type. Decoding is strict: an unknown or misspelled field, a
// duplicate key, or a kind this project does not ship is an error.
func load(dir string) (*manifests, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s: %v", dir, err)
	}
	m := &manifests{}
	for _, f := range files {
		m.files = append(m.files, filepath.Base(f))
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			if err := m.decode(doc); err != nil {
				return nil, fmt.Errorf("%s, document %d: %v", filepath.Base(f), i+1, err)
			}
		}
	}
	if m.namespace == nil || m.deployment == nil || m.service == nil || m.pdb == nil || m.policy == nil || m.hpa == nil {
		return nil, fmt.Errorf("want a Namespace, a Deployment, a Service, a PodDisruptionBudget, a NetworkPolicy and a HorizontalPodAutoscaler in %s", dir)
	}
	return m, nil
}

func (m *manifests) decode(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	var obj any
	switch gvk := tm.APIVersion + "/" + tm.Kind; gvk {
	case "v1/Namespace":
		m.namespace = &corev1.Namespace{}
		obj = m.namespace
	case "networking.k8s.io/v1/NetworkPolicy":
		m.policy = &networkingv1.NetworkPolicy{}
		obj = m.policy
	case "apps/v1/Deployment":
		m.deployment = &appsv1.Deployment{}
		obj = m.deployment
	case "v1/Service":
		m.service = &corev1.Service{}
		obj = m.service
	case "policy/v1/PodDisruptionBudget":
		m.pdb = &policyv1.PodDisruptionBudget{}
		obj = m.pdb
	case "autoscaling/v2/HorizontalPodAutoscaler":
		m.hpa = &autoscalingv2.HorizontalPodAutoscaler{}
		obj = m.hpa
	default:
		return fmt.Errorf("unexpected apiVersion/kind %q", gvk)
	}
	return yaml.UnmarshalStrict(doc, obj)
}

func TestStrictDecodingCatchesMistakes(t *testing.T) {
	for _, tc := range []struct{ name, doc string }{
		{"a misspelled field", "apiVersion: v1\nkind: Service\nmetadata: {name: x}\nspec: {selectr: {a: b}}\n"},
		{"a field of another kind", "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: x}\nspec: {replicas: 3}\n"},
		{"a duplicate key", "apiVersion: v1\nkind: Service\nmetadata: {name: x, name: y}\n"},
		{"an old apiVersion", "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: x}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := (&manifests{}).decode([]byte(tc.doc)); err == nil {
				t.Errorf("decoded without error:\n%s", tc.doc)
			}
		})
	}
}

func TestManifests(t *testing.T) {
	m, err := load(".")
	if err != nil {
		t.Fatal(err)
	}
	d := m.deployment
	pod := &d.Spec.Template
	c := container(t, pod)
	image, port := imageAndPort(t)
	path, shutdown := routeAndShutdown(t)

	t.Run("the pod meets the restricted Pod Security Standard", func(t *testing.T) {
		evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
		if err != nil {
			t.Fatal(err)
		}
		lv := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
		result := policy.AggregateCheckResults(evaluator.EvaluatePod(lv, &pod.ObjectMeta, &pod.Spec))
		if !result.Allowed {
			t.Errorf("restricted: %s: %s", result.ForbiddenReason(), result.ForbiddenDetail())
		}
	})

	t.Run("the image, user and port are the Makefile's and the Dockerfile's", func(t *testing.T) {
		if c.Image != image {
			t.Errorf("image %q, want %q (.env IMAGE:MULTI_TAG)", c.Image, image)
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != port || c.Ports[0].Name != "http" {
			t.Errorf("ports %+v, want one named http on %d (Dockerfile EXPOSE)", c.Ports, port)
		}
		sc := pod.Spec.SecurityContext
		if sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != 65534 || sc.RunAsGroup == nil || *sc.RunAsGroup != 65534 {
			t.Errorf("pod securityContext %+v: want runAsUser and runAsGroup 65534, the image's USER", sc)
		}
	})

	t.Run("the probes ask the service's own route on its port", func(t *testing.T) {
		for name, p := range map[string]*corev1.Probe{"readiness": c.ReadinessProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil {
				t.Errorf("%s probe: want an HTTP GET", name)
				continue
			}
			if p.HTTPGet.Path != path {
				t.Errorf("%s probe path %q, want %q (http.go's route)", name, p.HTTPGet.Path, path)
			}
			if p.HTTPGet.Port != intstr.FromString("http") {
				t.Errorf("%s probe port %v, want the named port http", name, p.HTTPGet.Port.String())
			}
		}
		if c.LivenessProbe != nil && c.ReadinessProbe != nil &&
			patience(c.LivenessProbe) <= patience(c.ReadinessProbe) {
			t.Errorf("liveness gives up after %v, readiness after %v: a busy pod would be restarted before it is taken out of the Service",
				patience(c.LivenessProbe), patience(c.ReadinessProbe))
		}
	})

	t.Run("the grace period covers the preStop wait and the server's shutdown", func(t *testing.T) {
		if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
			t.Fatal("want a preStop sleep action (scratch has no sleep binary)")
		}
		wait := time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
		if wait <= 0 {
			t.Errorf("preStop sleeps %v: want a few seconds for the endpoints to be updated", wait)
		}
		grace := time.Duration(*pod.Spec.TerminationGracePeriodSeconds) * time.Second
		if grace <= wait+shutdown {
			t.Errorf("terminationGracePeriodSeconds %v, want more than preStop %v + shutdownTimeout %v (http.go)", grace, wait, shutdown)
		}
	})

	t.Run("a rolling update never runs fewer than the replicas", func(t *testing.T) {
		ru := d.Spec.Strategy.RollingUpdate
		if d.Spec.Strategy.Type != appsv1.RollingUpdateDeploymentStrategyType || ru == nil ||
			ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 || ru.MaxSurge == nil || ru.MaxSurge.IntValue() < 1 {
			t.Errorf("strategy %+v: want RollingUpdate, maxUnavailable 0, maxSurge at least 1", d.Spec.Strategy)
		}
		if len(pod.Spec.TopologySpreadConstraints) == 0 {
			t.Error("want a topology spread constraint across nodes")
		}
	})

	t.Run("the autoscaler owns the count, and keeps the budget meaningful", func(t *testing.T) {
		h := m.hpa.Spec
		if d.Spec.Replicas != nil {
			t.Errorf("the Deployment sets replicas %d: every kubectl apply would undo the autoscaler's count", *d.Spec.Replicas)
		}
		if ref := h.ScaleTargetRef; ref.APIVersion != "apps/v1" || ref.Kind != "Deployment" || ref.Name != d.Name || m.hpa.Namespace != d.Namespace {
			t.Errorf("the autoscaler scales %+v in %s, want the Deployment %s in %s", ref, m.hpa.Namespace, d.Name, d.Namespace)
		}
		// The budget lets maxUnavailable go at a time: at the minimum, at
		// least two must still serve, one per node.
		unavailable := m.pdb.Spec.MaxUnavailable.IntValue()
		if h.MinReplicas == nil || *h.MinReplicas-int32(unavailable) < 2 || *h.MinReplicas < 3 {
			t.Errorf("minReplicas %v with the budget's maxUnavailable %d: want at least 3, and 2 serving during a disruption", h.MinReplicas, unavailable)
		}
		if h.MinReplicas != nil && h.MaxReplicas <= *h.MinReplicas {
			t.Errorf("maxReplicas %d: want more than minReplicas %d, or nothing scales", h.MaxReplicas, *h.MinReplicas)
		}
		if len(h.Metrics) != 1 || h.Metrics[0].Type != autoscalingv2.ResourceMetricSourceType || h.Metrics[0].Resource == nil ||
			h.Metrics[0].Resource.Name != corev1.ResourceCPU || h.Metrics[0].Resource.Target.Type != autoscalingv2.UtilizationMetricType ||
			h.Metrics[0].Resource.Target.AverageUtilization == nil {
			t.Fatalf("metrics %+v: want the pods' CPU utilization", h.Metrics)
		}
		if u := *h.Metrics[0].Resource.Target.AverageUtilization; u <= 0 || u >= 100 {
			t.Errorf("target %d%% of the CPU request: want room to grow before the pods are busy", u)
		}
		if c.Resources.Requests.Cpu().IsZero() {
			t.Error("no CPU request: a utilization target is a share of it")
		}
		if b := h.Behavior; b == nil || b.ScaleDown == nil || b.ScaleDown.StabilizationWindowSeconds == nil || *b.ScaleDown.StabilizationWindowSeconds <= 0 {
			t.Errorf("behavior %+v: want a scale-down window, stated", h.Behavior)
		}
	})

	t.Run("the selectors select the pods", func(t *testing.T) {
		podLabels := labels.Set(pod.Labels)
		for name, sel := range map[string]*metav1.LabelSelector{
			"Deployment": d.Spec.Selector, "PodDisruptionBudget": m.pdb.Spec.Selector,
			"topology spread": pod.Spec.TopologySpreadConstraints[0].LabelSelector,
		} {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil || s.Empty() || !s.Matches(podLabels) {
				t.Errorf("%s selector %v does not select the pod labels %v (%v)", name, sel, podLabels, err)
			}
		}
		if s := labels.SelectorFromSet(m.service.Spec.Selector); s.Empty() || !s.Matches(podLabels) {
			t.Errorf("Service selector %v does not select the pod labels %v", m.service.Spec.Selector, podLabels)
		}
		if tp := m.service.Spec.Ports[0].TargetPort; tp != intstr.FromString("http") {
			t.Errorf("Service targetPort %v, want the container's port name http", tp.String())
		}
	})

	t.Run("the pod is locked down beyond the standard", func(t *testing.T) {
		if a := pod.Spec.AutomountServiceAccountToken; a == nil || *a {
			t.Error("want automountServiceAccountToken: false")
		}
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Error("want readOnlyRootFilesystem: true")
		}
		mem := c.Resources.Limits.Memory()
		req := c.Resources.Requests.Memory()
		if mem.IsZero() || req.IsZero() || req.Cmp(*mem) > 0 {
			t.Errorf("memory request %v and limit %v: want both, request at most the limit", req, mem)
		}
		// whoami finds the limit in its cgroup and keeps Go under 70% of
		// it: a GOMEMLIMIT set to the limit would leave Go no headroom.
		for _, e := range c.Env {
			if e.Name == "GOMEMLIMIT" {
				t.Errorf("GOMEMLIMIT is set (%v): leave it unset, whoami sizes itself from the pod's limit", e)
			}
		}
	})
}

func TestNamespaceAndPolicy(t *testing.T) {
	m, err := load(".")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("the namespace enforces, audits and warns at the restricted level", func(t *testing.T) {
		for _, mode := range []string{psaapi.EnforceLevelLabel, psaapi.AuditLevelLabel, psaapi.WarnLevelLabel} {
			if got := m.namespace.Labels[mode]; got != string(psaapi.LevelRestricted) {
				t.Errorf("namespace label %s=%q, want restricted", mode, got)
			}
		}
	})
	t.Run("the namespace opts in to the image policy: signed images only", func(t *testing.T) {
		if got := m.namespace.Labels["policy.sigstore.dev/include"]; got != "true" {
			t.Errorf("namespace label policy.sigstore.dev/include=%q, want true", got)
		}
	})
	t.Run("every object is in the namespace", func(t *testing.T) {
		for kind, meta := range map[string]metav1.ObjectMeta{
			"Deployment": m.deployment.ObjectMeta, "Service": m.service.ObjectMeta,
			"PodDisruptionBudget": m.pdb.ObjectMeta, "NetworkPolicy": m.policy.ObjectMeta,
		} {
			if meta.Namespace != m.namespace.Name {
				t.Errorf("%s %s is in namespace %q, want %q", kind, meta.Name, meta.Namespace, m.namespace.Name)
			}
		}
	})
	t.Run("the namespace's file sorts first, so kubectl apply -f creates it first", func(t *testing.T) {
		if len(m.files) == 0 || m.files[0] != "00-namespace.yaml" {
			t.Errorf("files in order %v: want 00-namespace.yaml first", m.files)
		}
	})
	t.Run("the network policy lets in the service's port only, and nothing out", func(t *testing.T) {
		p := m.policy.Spec
		sel, err := metav1.LabelSelectorAsSelector(&p.PodSelector)
		if err != nil || sel.Empty() || !sel.Matches(labels.Set(m.deployment.Spec.Template.Labels)) {
			t.Errorf("podSelector %v does not select the pods (%v)", p.PodSelector, err)
		}
		if !slices.Equal(p.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}) {
			t.Errorf("policyTypes %v, want [Ingress Egress]", p.PolicyTypes)
		}
		if len(p.Ingress) != 1 || len(p.Ingress[0].From) != 0 || len(p.Ingress[0].Ports) != 1 ||
			p.Ingress[0].Ports[0].Port == nil || *p.Ingress[0].Ports[0].Port != intstr.FromString("http") {
			t.Errorf("ingress %+v: want one rule, from anywhere, to the port named http only", p.Ingress)
		}
		if len(p.Egress) != 0 {
			t.Errorf("egress %+v: want none", p.Egress)
		}
	})
	t.Run("the Kustomization lists every manifest, so -k applies what -f applies", func(t *testing.T) {
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal([]byte(read(t, "deploy/kubernetes/Kustomization")), &k); err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(slices.Values(k.Resources)); !slices.Equal(got, m.files) {
			t.Errorf("Kustomization resources %v, want the manifests %v", got, m.files)
		}
	})
	t.Run("pods leave a lost node sooner than the default 300 s", func(t *testing.T) {
		for _, key := range []string{corev1.TaintNodeUnreachable, corev1.TaintNodeNotReady} {
			i := slices.IndexFunc(m.deployment.Spec.Template.Spec.Tolerations, func(t corev1.Toleration) bool { return t.Key == key })
			if i < 0 {
				t.Errorf("no toleration for %s: pods would stay 300 s on a lost node", key)
				continue
			}
			tol := m.deployment.Spec.Template.Spec.Tolerations[i]
			if tol.Effect != corev1.TaintEffectNoExecute || tol.TolerationSeconds == nil || *tol.TolerationSeconds >= 300 || *tol.TolerationSeconds < 10 {
				t.Errorf("toleration of %s: effect %q, tolerationSeconds %v: want NoExecute, from 10 to 299 s", key, tol.Effect, ptrString(tol.TolerationSeconds))
			}
		}
	})
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// patience is how long a probe fails before Kubernetes acts.
func patience(p *corev1.Probe) time.Duration {
	return time.Duration(p.PeriodSeconds*p.FailureThreshold) * time.Second
}

func container(t *testing.T, pod *corev1.PodTemplateSpec) *corev1.Container {
	t.Helper()
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("want one container, got %d", len(pod.Spec.Containers))
	}
	return &pod.Spec.Containers[0]
}

// imageAndPort reads the image name from .env (IMAGE:MULTI_TAG, what make
// image-multi builds) and the port from the Dockerfile (EXPOSE).
func imageAndPort(t *testing.T) (string, int32) {
	t.Helper()
	env := read(t, ".env")
	name := submatch(t, env, `(?m)^IMAGE=(\S+)$`)
	tag := submatch(t, env, `(?m)^MULTI_TAG=(\S+)$`)
	port, err := strconv.Atoi(submatch(t, read(t, "Dockerfile"), `(?m)^EXPOSE\s+(\d+)`))
	if err != nil {
		t.Fatal(err)
	}
	return name + ":" + tag, int32(port)
}

// routeAndShutdown reads, from http.go's syntax tree, the path of the one
// route (const route = "/whoami") and the shutdownTimeout constant
// (N * time.Second).
func routeAndShutdown(t *testing.T) (path string, shutdown time.Duration) {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join(root, "http.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			if n.Names[0].Name == "route" && len(n.Values) == 1 {
				if lit, ok := n.Values[0].(*ast.BasicLit); ok {
					path, _ = strconv.Unquote(lit.Value)
				}
			}
			if n.Names[0].Name == "shutdownTimeout" {
				if e, ok := n.Values[0].(*ast.BinaryExpr); ok && e.Op == token.MUL {
					if lit, ok := e.X.(*ast.BasicLit); ok && selectorName(e.Y) == "time.Second" {
						s, _ := strconv.Atoi(lit.Value)
						shutdown = time.Duration(s) * time.Second
					}
				}
			}
		}
		return true
	})
	if path == "" || shutdown == 0 {
		t.Fatalf("http.go: found route %q and shutdownTimeout %v: want const route = \"/path\" and shutdownTimeout = N * time.Second", path, shutdown)
	}
	return path, shutdown
}

// selectorName renders a selector expression such as time.Second.
func selectorName(e ast.Expr) string {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		if x, ok := sel.X.(*ast.Ident); ok {
			return x.Name + "." + sel.Sel.Name
		}
	}
	return ""
}

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func submatch(t *testing.T, s, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no match for %s", re)
	}
	return m[1]
}
