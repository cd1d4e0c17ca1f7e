package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"whoami/internal/probe"
)

// autoscaler is what the tool reads of whoami's HorizontalPodAutoscaler.
type autoscaler struct {
	min, max, target int // replicas, and the CPU target in % of the request
	window           time.Duration
	desired          int // what it asks for now
}

func (k *kube) autoscaler(ctx context.Context) (autoscaler, error) {
	out, err := k.kubectlOut(ctx, "get", "horizontalpodautoscaler", "whoami", "-o", "json")
	if err != nil {
		return autoscaler{}, fmt.Errorf("%v: apply the manifests first (make k8s-demo)", err)
	}
	var h struct {
		Spec struct {
			MinReplicas *int
			MaxReplicas int
			Metrics     []struct {
				Resource struct {
					Target struct{ AverageUtilization int }
				}
			}
			Behavior struct {
				ScaleDown struct{ StabilizationWindowSeconds *int }
			}
		}
		Status struct{ DesiredReplicas int }
	}
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		return autoscaler{}, fmt.Errorf("kubectl get horizontalpodautoscaler: %v", err)
	}
	a := autoscaler{min: 1, max: h.Spec.MaxReplicas, window: 300 * time.Second, desired: h.Status.DesiredReplicas}
	if h.Spec.MinReplicas != nil {
		a.min = *h.Spec.MinReplicas
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource.Target.AverageUtilization == 0 {
		return autoscaler{}, errors.New("the autoscaler whoami has no CPU utilization target: want the one of deploy/kubernetes/hpa.yaml")
	}
	a.target = h.Spec.Metrics[0].Resource.Target.AverageUtilization
	if w := h.Spec.Behavior.ScaleDown.StabilizationWindowSeconds; w != nil {
		a.window = time.Duration(*w) * time.Second
	}
	return a, nil
}

// podCPU returns the CPU of each whoami pod in millicores, from the Metrics
// API (what the autoscaler reads too).
func (k *kube) podCPU(ctx context.Context) (map[string]float64, error) {
	out, err := k.kubectlOut(ctx, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/"+k.namespace+"/pods?labelSelector=app.kubernetes.io%2Fname%3Dwhoami")
	if err != nil {
		return nil, fmt.Errorf("the Metrics API: %v (make k8s-up starts metrics-server)", err)
	}
	var list struct {
		Items []struct {
			Metadata   struct{ Name string }
			Containers []struct {
				Usage struct{ CPU string }
			}
		}
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		return nil, fmt.Errorf("the Metrics API: %v", err)
	}
	cpu := map[string]float64{}
	for _, it := range list.Items {
		for _, c := range it.Containers {
			m, err := millicores(c.Usage.CPU)
			if err != nil {
				return nil, err
			}
			cpu[it.Metadata.Name] += m
		}
	}
	return cpu, nil
}

// millicores reads a CPU quantity as the Metrics API writes it: 12345678n,
// 1234u, 12m or 1 (cores).
func millicores(q string) (float64, error) {
	scale := map[byte]float64{'n': 1e-6, 'u': 1e-3, 'm': 1}
	num, unit := q, 1000.0
	if n := len(q); n > 0 && scale[q[n-1]] != 0 {
		num, unit = q[:n-1], scale[q[n-1]]
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("a CPU quantity %q", q)
	}
	return v * unit, nil
}

// sample is one line of the timeline.
type sample struct {
	at       time.Duration // since the start
	serving  int           // pods Ready and not terminating
	desired  int           // the autoscaler's count
	cpu      float64       // the pods' mean CPU, millicores (the Metrics API's latest)
	rps      float64       // requests per second answered over the last interval, all clients
	failed   int           // failed requests so far, all clients
	loadOn   bool          // the rising load is running
	cpuKnown bool
}

// scaling is what one autoscaling run did.
type scaling struct {
	auto       autoscaler
	request    float64 // the pods' CPU request, millicores
	samples    []sample
	crossed    time.Duration // the mean CPU first above the target; -1: never
	outServing time.Duration // then the first pod beyond the minimum serving; -1: never
	most       int           // the most pods serving
	loadOff    time.Duration // the rising load stopped
	backToMin  time.Duration // then back to the minimum, old pods gone; -1: never
	paced      loads         // the paced clients, through each way in
	rising     []*probe.Load // the rising load's clients, through the front door
}

// autoscale runs the demo: paced clients through the Service and the front
// door the whole time; a load through the front door that rises (2 clients
// of about 200 requests a second each added every 10 s, up to maxClients)
// until the autoscaler adds pods, holds
// until they serve and 15 s more, then stops; then it waits until the
// autoscaler is back to its minimum. It prints a line every 5 s.
func autoscale(ctx context.Context, k *kube, maxClients int) (*scaling, error) {
	a, err := k.autoscaler(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := k.podCPU(ctx); err != nil {
		return nil, err
	}
	request, err := k.cpuRequest(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := k.waitServing(ctx); err != nil {
		return nil, err
	}
	s := &scaling{auto: a, request: request, crossed: -1, outServing: -1, backToMin: -1, loadOff: -1}
	// Paced: 2 clients each way, a request each 50 ms per client on a new
	// connection, as in the rollout's load.
	if s.paced, err = k.startLoads(ctx, probe.Options{Clients: 2, Interval: 50 * time.Millisecond, Timeout: 2 * time.Second}); err != nil {
		return nil, err
	}
	defer s.paced.Stop()
	k.printf("==> the autoscaler: %d to %d pods, CPU target %d%% of %.0fm (%.0fm a pod), scale-down window %v\n",
		a.min, a.max, a.target, request, request*float64(a.target)/100, a.window)
	k.printf("==> 2 paced clients through the Service and 2 through the front door the whole time; a rising load through the front door\n\n")
	k.printf("%6s %7s %7s %9s %8s %7s %s\n", "t (s)", "serving", "desired", "CPU/pod", "req/s", "failed", "load")
	t0 := time.Now()
	stopRising := func() {
		for _, l := range s.rising {
			l.Stop()
		}
	}
	defer stopRising()
	target := request * float64(a.target) / 100
	deadline := time.After(15 * time.Minute)
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	lastN, lastAt := 0, time.Duration(0)
	var grew time.Duration = -1 // when the rising load last grew
	for {
		at := time.Since(t0)
		// The rising load: more clients every 10 s until the autoscaler
		// adds pods, then hold until they serve, 15 s more, and stop.
		loadOn := s.loadOff < 0
		if loadOn && s.outServing < 0 && len(s.rising) < maxClients && (grew < 0 || at-grew >= 10*time.Second) {
			// Each client about 200 requests a second, on a kept-alive
			// connection: the front door balances each request.
			for range 2 {
				s.rising = append(s.rising, probe.Start(ctx, k.frontDoor, probe.Options{Clients: 1, Host: k.host,
					Timeout: 2 * time.Second, Interval: 5 * time.Millisecond}))
			}
			grew = at
		}
		if loadOn && s.outServing >= 0 && at-s.outServing >= 15*time.Second {
			stopRising()
			s.loadOff, loadOn = at, false
		}
		smp := sample{at: at, loadOn: loadOn}
		if ps, err := k.pods(ctx); err == nil {
			smp.serving = len(serving(ps))
			if cpu, err := k.podCPU(ctx); err == nil && len(cpu) > 0 {
				var sum float64
				n := 0
				for _, p := range serving(ps) {
					if c, ok := cpu[p.Name]; ok {
						sum, n = sum+c, n+1
					}
				}
				if n > 0 {
					smp.cpu, smp.cpuKnown = sum/float64(n), true
				}
			}
		}
		if h, err := k.autoscaler(ctx); err == nil {
			smp.desired = h.desired
		}
		service, frontDoor, rising, sent := s.failed()
		failed := service + frontDoor + rising
		n := sent - failed
		if len(s.samples) > 0 {
			smp.rps = float64(n-lastN) / (at - lastAt).Seconds()
		}
		lastN, lastAt, smp.failed = n, at, failed
		s.samples = append(s.samples, smp)
		s.most = max(s.most, smp.serving)
		if s.crossed < 0 && smp.cpuKnown && smp.cpu > target {
			s.crossed = at
		}
		if s.outServing < 0 && smp.serving > a.min {
			s.outServing = at
		}
		load := "off"
		if loadOn {
			load = fmt.Sprintf("%d clients", len(s.rising))
		}
		cpu := "-"
		if smp.cpuKnown {
			cpu = fmt.Sprintf("%.1fm", smp.cpu)
		}
		k.printf("%6.0f %7d %7d %9s %8.0f %7d %s\n", at.Seconds(), smp.serving, smp.desired, cpu, smp.rps, smp.failed, load)
		if s.loadOff >= 0 && smp.serving == a.min && smp.desired == a.min {
			if ps, err := k.pods(ctx); err == nil && len(ps) == a.min {
				s.backToMin = at
				break
			}
		}
		if s.loadOff < 0 && s.outServing < 0 && len(s.rising) >= maxClients && at-grew > 2*time.Minute {
			if s.crossed < 0 {
				return s, fmt.Errorf("%d clients for 2 minutes did not bring the pods' CPU above the target: more clients (-max-clients)", maxClients)
			}
			return s, fmt.Errorf("the CPU crossed the target at %.0f s, and no pod was serving beyond the minimum 2 minutes after the load's last rise", s.crossed.Seconds())
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-deadline:
			return s, errors.New("the demo ran 15 minutes: the autoscaler did not scale out and back in")
		case <-tick.C:
		}
	}
	s.paced.Stop()
	return s, nil
}

// failed counts the failed requests of the paced clients through each way
// in, and of the rising load, and what each sent.
func (s *scaling) failed() (service, frontDoor, rising, sent int) {
	total, service := s.paced[0].Counts()
	sent += total
	total, frontDoor = s.paced[1].Counts()
	sent += total
	for _, l := range s.rising {
		total, f := l.Counts()
		sent, rising = sent+total, rising+f
	}
	return service, frontDoor, rising, sent
}

// report prints what the run measured, and fails unless the goals held:
// new pods serving within 90 s of the CPU crossing the target, back to the
// minimum within the scale-down window and a minute of the load's end, and
// no request failed.
func (s *scaling) report(k *kube) error {
	service, frontDoor, rising, sent := s.failed()
	k.printf("\nscale-out: the pods' CPU above the target at %.0f s; a new pod serving at %.0f s; %d pods at most\n",
		s.crossed.Seconds(), s.outServing.Seconds(), s.most)
	k.printf("scale-in: the load stopped at %.0f s; back to %d pods at %.0f s (the window is %v)\n",
		s.loadOff.Seconds(), s.auto.min, s.backToMin.Seconds(), s.auto.window)
	k.printf("requests: %d sent, failed: %d through the Service (paced), %d through the front door (paced), %d of the rising load\n",
		sent, service, frontDoor, rising)
	for _, l := range append(slices.Clone(s.rising), s.paced[0].Load, s.paced[1].Load) {
		if k.out != nil {
			l.ReportErrors(k.out)
		}
	}
	var errs []error
	if s.crossed < 0 || s.outServing < 0 || s.outServing-s.crossed > 90*time.Second {
		errs = append(errs, fmt.Errorf("a new pod served %.0f s after the CPU crossed the target, want within 90 s", (s.outServing-s.crossed).Seconds()))
	}
	if s.backToMin < 0 || s.backToMin-s.loadOff > s.auto.window+time.Minute {
		errs = append(errs, fmt.Errorf("back to the minimum %.0f s after the load stopped, want within the window (%v) and a minute", (s.backToMin-s.loadOff).Seconds(), s.auto.window))
	}
	if n := service + frontDoor + rising; n > 0 {
		errs = append(errs, fmt.Errorf("%d requests failed", n))
	}
	return errors.Join(errs...)
}

// cpuRequest is the CPU request of the Deployment's container, millicores.
func (k *kube) cpuRequest(ctx context.Context) (float64, error) {
	out, err := k.kubectlOut(ctx, "get", "deployment", "whoami", "-o", "jsonpath={.spec.template.spec.containers[0].resources.requests.cpu}")
	if err != nil {
		return 0, err
	}
	if out == "" {
		return 0, errors.New("the Deployment's container has no CPU request: the autoscaler's target is a share of it")
	}
	return millicores(strings.TrimSpace(out))
}
