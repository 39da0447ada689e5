// Command cyclonus-oracle computes Kubernetes NetworkPolicy verdicts with the cyclonus matcher
// (github.com/mattfenwick/cyclonus/pkg/matcher), as an oracle for differential tests. It
// corrects, by rewriting the input before cyclonus sees it, the places where cyclonus v0.5.6
// deviates from the Kubernetes spec or from the choices Netloom made (see "Deviations" below).
//
// Input (stdin): one JSON document
//
//	{"policies": [<networking.k8s.io/v1 NetworkPolicy>...],
//	 "queries": [{"source": Peer, "destination": Peer, "port": 80,
//	              "portName": "http", "protocol": "TCP"}...]}
//
// Peer is {"namespace": "x", "podLabels": {...}, "namespaceLabels": {...}, "ip": "10.244.1.5"}
// for a pod, or {"ip": "192.0.2.7"} (no namespace) for an address outside the cluster.
// portName is optional: the destination pod's named port that port resolves to.
// protocol is TCP, UDP or SCTP.
//
// Output (stdout): {"verdicts": [{"allowed": bool, "ingress": bool, "egress": bool}...]}, one
// per query in order; ingress/egress say whether each direction alone allows the traffic, and
// allowed is both.
//
// Deviations of cyclonus v0.5.6, and what this program does about them:
//
//   - NotIn on an object without the key: Kubernetes matches, cyclonus does not. Each selector
//     (spec.podSelector, and podSelector/namespaceSelector of every peer) is expanded into a
//     disjunction: each "k NotIn V" becomes "k DoesNotExist" OR "k NotIn V" (cyclonus's NotIn,
//     which requires the key, is exactly the second half). A peer becomes several peers (peers
//     are ORed); a policy whose spec.podSelector expands becomes several policies with the
//     same rules (a pod selected by any of them gets the union of their rules, as before).
//     At most maxNotIn NotIn requirements per selector are accepted.
//   - matchLabels {k: ""}: Kubernetes requires k present with the empty value, cyclonus also
//     matches objects without k. Such entries are moved to matchExpressions as "k In [""]",
//     which cyclonus evaluates correctly (In requires the key).
//   - Empty spec.policyTypes: cyclonus panics. They are defaulted as the API server does
//     (SetDefaults_NetworkPolicy): Ingress, plus Egress when spec.egress is non-empty.
//   - A policy without metadata.namespace: cyclonus assumes "default". The oracle rejects it.
//   - ipBlock and pods: cyclonus matches ipBlocks against whatever IP the peer carries, and
//     panics on a peer without a parseable IP. Netloom follows Cilium: an ipBlock never matches
//     traffic to or from a pod. A pod peer's "ip" is therefore never given to cyclonus, and a
//     direction whose peer is a pod is evaluated against a copy of the policies in which every
//     ipBlock peer is replaced by a pod peer that cannot match (podSelector "k Exists AND
//     k DoesNotExist"), so ports and the rule's other peers are unchanged.
//   - Namespaces: like the API server, every namespace carries the label
//     kubernetes.io/metadata.name=<name>; it is added to a pod peer's namespaceLabels when
//     absent, and a different value is rejected.
//
// Not checked: the rest of the API server's validation (the input must be valid
// NetworkPolicies); cyclonus panics on some invalid ones (a peer with ipBlock and a selector, a
// port range with a named or missing start port), which are reported as errors.
//
// Bad input exits with status 1 and a message on stderr.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	// namespaceNameLabel is set on every namespace by the API server.
	namespaceNameLabel = "kubernetes.io/metadata.name"
	// neverKey names the label of the selector that replaces ipBlock peers for pod peers.
	neverKey = "cyclonus-oracle.netloom.local/ipblock-never-matches-pods"
	// maxNotIn bounds the expansion of one selector (2^maxNotIn alternatives).
	maxNotIn = 8
)

type peer struct {
	Namespace       string            `json:"namespace,omitempty"`
	PodLabels       map[string]string `json:"podLabels,omitempty"`
	NamespaceLabels map[string]string `json:"namespaceLabels,omitempty"`
	IP              string            `json:"ip,omitempty"`
}

type query struct {
	Source      *peer  `json:"source"`
	Destination *peer  `json:"destination"`
	Port        int    `json:"port"`
	PortName    string `json:"portName,omitempty"`
	Protocol    string `json:"protocol"`
}

type input struct {
	Policies []*networkingv1.NetworkPolicy `json:"policies"`
	Queries  []query                       `json:"queries"`
}

type verdict struct {
	Allowed bool `json:"allowed"`
	Ingress bool `json:"ingress"`
	Egress  bool `json:"egress"`
}

type output struct {
	Verdicts []verdict `json:"verdicts"`
}

func main() {
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: cyclonus-oracle < input.json  ({\"policies\": [...], \"queries\": [...]})")
		os.Exit(2)
	}
	raw, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	out, err := run(raw)
	if err != nil {
		fail("%v", err)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("writing stdout: %v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cyclonus-oracle: "+format+"\n", args...)
	os.Exit(1)
}

func run(raw []byte) (*output, error) {
	var in input
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return nil, fmt.Errorf("parsing input: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("parsing input: more than one JSON document on stdin")
	}

	// Policies as evaluated when the peer is outside the cluster, and when it is a pod.
	forExternal, forPods, err := preparePolicies(in.Policies)
	if err != nil {
		return nil, err
	}
	external, err := build(forExternal)
	if err != nil {
		return nil, err
	}
	pods, err := build(forPods)
	if err != nil {
		return nil, err
	}

	out := &output{Verdicts: make([]verdict, 0, len(in.Queries))}
	for i, q := range in.Queries {
		v, err := evaluate(external, pods, q)
		if err != nil {
			return nil, fmt.Errorf("query %d: %v", i, err)
		}
		out.Verdicts = append(out.Verdicts, v)
	}
	return out, nil
}

func build(policies []*networkingv1.NetworkPolicy) (p *matcher.Policy, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cyclonus rejected the policies: %v", r)
		}
	}()
	return matcher.BuildNetworkPolicies(false, policies), nil
}

func evaluate(external, pods *matcher.Policy, q query) (v verdict, err error) {
	src, err := trafficPeer("source", q.Source)
	if err != nil {
		return v, err
	}
	dst, err := trafficPeer("destination", q.Destination)
	if err != nil {
		return v, err
	}
	if q.Port < 1 || q.Port > 65535 {
		return v, fmt.Errorf("port %d is not in 1..65535", q.Port)
	}
	protocol := v1.Protocol(q.Protocol)
	switch protocol {
	case v1.ProtocolTCP, v1.ProtocolUDP, v1.ProtocolSCTP:
	default:
		return v, fmt.Errorf("protocol %q is not TCP, UDP or SCTP", q.Protocol)
	}
	traffic := &matcher.Traffic{
		Source:           src,
		Destination:      dst,
		ResolvedPort:     q.Port,
		ResolvedPortName: q.PortName,
		Protocol:         protocol,
	}
	// Ingress is decided by the destination's policies about the source, egress by the
	// source's policies about the destination; ipBlocks never match a pod peer.
	policyFor := func(p *matcher.TrafficPeer) *matcher.Policy {
		if p.IsExternal() {
			return external
		}
		return pods
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cyclonus failed: %v", r)
		}
	}()
	v.Ingress = policyFor(src).IsIngressOrEgressAllowed(traffic, true).IsAllowed()
	v.Egress = policyFor(dst).IsIngressOrEgressAllowed(traffic, false).IsAllowed()
	v.Allowed = v.Ingress && v.Egress
	return v, nil
}

func trafficPeer(role string, p *peer) (*matcher.TrafficPeer, error) {
	if p == nil {
		return nil, fmt.Errorf("%s is missing", role)
	}
	if p.IP != "" && net.ParseIP(p.IP) == nil {
		return nil, fmt.Errorf("%s ip %q is not an IP address", role, p.IP)
	}
	if p.Namespace == "" {
		if len(p.PodLabels) > 0 || len(p.NamespaceLabels) > 0 {
			return nil, fmt.Errorf("%s has labels but no namespace (a peer outside the cluster has only an ip)", role)
		}
		if p.IP == "" {
			return nil, fmt.Errorf("%s has neither a namespace (a pod) nor an ip (outside the cluster)", role)
		}
		return &matcher.TrafficPeer{IP: p.IP}, nil
	}
	nsLabels := map[string]string{}
	for k, val := range p.NamespaceLabels {
		nsLabels[k] = val
	}
	if val, ok := nsLabels[namespaceNameLabel]; ok && val != p.Namespace {
		return nil, fmt.Errorf("%s namespaceLabels %s=%q differs from namespace %q (the API server sets it to the name)",
			role, namespaceNameLabel, val, p.Namespace)
	}
	nsLabels[namespaceNameLabel] = p.Namespace
	podLabels := map[string]string{}
	for k, val := range p.PodLabels {
		podLabels[k] = val
	}
	// The pod's IP is deliberately not passed: ipBlocks do not match pods (see the header).
	return &matcher.TrafficPeer{Internal: &matcher.InternalPeer{
		PodLabels:       podLabels,
		NamespaceLabels: nsLabels,
		Namespace:       p.Namespace,
	}}, nil
}

// preparePolicies returns the corrected policies for external peers, and the same with every
// ipBlock peer replaced by a peer no pod matches, for pod peers.
func preparePolicies(in []*networkingv1.NetworkPolicy) (forExternal, forPods []*networkingv1.NetworkPolicy, err error) {
	for i, np := range in {
		if np == nil {
			return nil, nil, fmt.Errorf("policy %d is null", i)
		}
		name := fmt.Sprintf("policy %d (%s)", i, np.Name)
		if np.Namespace == "" {
			return nil, nil, fmt.Errorf("%s: metadata.namespace is empty (set it; cyclonus would assume \"default\")", name)
		}
		np = np.DeepCopy()
		if len(np.Spec.PolicyTypes) == 0 {
			np.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
			if len(np.Spec.Egress) != 0 {
				np.Spec.PolicyTypes = append(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
			}
		}
		for j := range np.Spec.Ingress {
			peers, err := expandPeers(np.Spec.Ingress[j].From)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: spec.ingress[%d].from: %v", name, j, err)
			}
			np.Spec.Ingress[j].From = peers
		}
		for j := range np.Spec.Egress {
			peers, err := expandPeers(np.Spec.Egress[j].To)
			if err != nil {
				return nil, nil, fmt.Errorf("%s: spec.egress[%d].to: %v", name, j, err)
			}
			np.Spec.Egress[j].To = peers
		}
		selectors, err := alternatives(np.Spec.PodSelector)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: spec.podSelector: %v", name, err)
		}
		for k, sel := range selectors {
			part := np.DeepCopy()
			if len(selectors) > 1 {
				part.Name = fmt.Sprintf("%s--alternative-%d", np.Name, k)
			}
			part.Spec.PodSelector = sel
			forExternal = append(forExternal, part)
			forPods = append(forPods, withoutIPBlocks(part))
		}
	}
	return forExternal, forPods, nil
}

// expandPeers rewrites each peer's selectors into cyclonus-safe alternatives (ORed peers).
// A nil or empty list stays as it is: both mean "all peers".
func expandPeers(peers []networkingv1.NetworkPolicyPeer) ([]networkingv1.NetworkPolicyPeer, error) {
	if len(peers) == 0 {
		return peers, nil
	}
	var out []networkingv1.NetworkPolicyPeer
	for i, p := range peers {
		pods, err := optionalAlternatives(p.PodSelector)
		if err != nil {
			return nil, fmt.Errorf("[%d].podSelector: %v", i, err)
		}
		namespaces, err := optionalAlternatives(p.NamespaceSelector)
		if err != nil {
			return nil, fmt.Errorf("[%d].namespaceSelector: %v", i, err)
		}
		for _, ps := range pods {
			for _, ns := range namespaces {
				q := *p.DeepCopy()
				q.PodSelector = ps
				q.NamespaceSelector = ns
				out = append(out, q)
			}
		}
	}
	return out, nil
}

// optionalAlternatives is alternatives for a selector that may be absent (nil stays nil).
func optionalAlternatives(sel *metav1.LabelSelector) ([]*metav1.LabelSelector, error) {
	if sel == nil {
		return []*metav1.LabelSelector{nil}, nil
	}
	alts, err := alternatives(*sel)
	if err != nil {
		return nil, err
	}
	out := make([]*metav1.LabelSelector, len(alts))
	for i := range alts {
		out[i] = &alts[i]
	}
	return out, nil
}

// alternatives returns selectors whose union, as cyclonus evaluates them, is what sel matches
// in Kubernetes: matchLabels {k: ""} becomes "k In [""]", and each "k NotIn V" becomes the two
// alternatives "k DoesNotExist" and "k NotIn V". An empty selector stays empty.
func alternatives(sel metav1.LabelSelector) ([]metav1.LabelSelector, error) {
	base := metav1.LabelSelector{}
	var exprs []metav1.LabelSelectorRequirement
	for k, val := range sel.MatchLabels {
		if val == "" {
			exprs = append(exprs, metav1.LabelSelectorRequirement{
				Key: k, Operator: metav1.LabelSelectorOpIn, Values: []string{""},
			})
			continue
		}
		if base.MatchLabels == nil {
			base.MatchLabels = map[string]string{}
		}
		base.MatchLabels[k] = val
	}
	// Deterministic order for the converted matchLabels (map iteration is random).
	sort.Slice(exprs, func(i, j int) bool { return exprs[i].Key < exprs[j].Key })

	choices := [][]metav1.LabelSelectorRequirement{}
	notIn := 0
	for _, e := range sel.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
			exprs = append(exprs, *e.DeepCopy())
		case metav1.LabelSelectorOpNotIn:
			notIn++
			choices = append(choices, []metav1.LabelSelectorRequirement{
				{Key: e.Key, Operator: metav1.LabelSelectorOpDoesNotExist},
				*e.DeepCopy(),
			})
		default:
			return nil, fmt.Errorf("matchExpressions operator %q is not In, NotIn, Exists or DoesNotExist", e.Operator)
		}
	}
	if notIn > maxNotIn {
		return nil, fmt.Errorf("%d NotIn requirements in one selector; the oracle expands at most %d", notIn, maxNotIn)
	}
	base.MatchExpressions = exprs
	out := []metav1.LabelSelector{base}
	for _, choice := range choices {
		var next []metav1.LabelSelector
		for _, s := range out {
			for _, req := range choice {
				n := *s.DeepCopy()
				n.MatchExpressions = append(n.MatchExpressions, req)
				next = append(next, n)
			}
		}
		out = next
	}
	return out, nil
}

// withoutIPBlocks returns a copy of np in which every ipBlock peer is replaced by a peer that
// no pod matches, keeping the rule's ports and other peers.
func withoutIPBlocks(np *networkingv1.NetworkPolicy) *networkingv1.NetworkPolicy {
	out := np.DeepCopy()
	never := func() *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: neverKey, Operator: metav1.LabelSelectorOpExists},
			{Key: neverKey, Operator: metav1.LabelSelectorOpDoesNotExist},
		}}
	}
	replace := func(peers []networkingv1.NetworkPolicyPeer) {
		for i := range peers {
			if peers[i].IPBlock != nil {
				peers[i] = networkingv1.NetworkPolicyPeer{PodSelector: never()}
			}
		}
	}
	for j := range out.Spec.Ingress {
		replace(out.Spec.Ingress[j].From)
	}
	for j := range out.Spec.Egress {
		replace(out.Spec.Egress[j].To)
	}
	return out
}
