{{/*
Webhook names, paths and TLS material.

TLS comes one of three ways (docs/operations.md):
  * certManager.enabled: cert-manager issues the Secret; cainjector fills in the caBundle.
  * webhook.tls.existingSecret: the user's Secret; the user's webhook.tls.caBundle.
  * otherwise the chart generates a CA and a serving certificate. They are computed once per render and
    cached in .Values, so the Secret and both webhook configurations carry the same CA. On upgrades the
    Secret in the cluster is reused (lookup) while it still covers the current host names and has more
    than 30 days to live; otherwise a new CA and certificate replace it in the same release.
*/}}

{{- define "otlp-operator.webhookServiceName" -}}
{{- printf "%s-webhook" (include "otlp-operator.fullname" .) }}
{{- end }}

{{- define "otlp-operator.webhookSecretName" -}}
{{- if .Values.webhook.tls.existingSecret }}
{{- .Values.webhook.tls.existingSecret }}
{{- else }}
{{- printf "%s-webhook-tls" (include "otlp-operator.fullname" .) }}
{{- end }}
{{- end }}

{{- define "otlp-operator.certificateName" -}}
{{- printf "%s-webhook" (include "otlp-operator.fullname" .) }}
{{- end }}

{{/* Where the operator finds the serving certificate and key (the mounted Secret). */}}
{{- define "otlp-operator.webhookCertDir" -}}
/etc/otlp-operator/webhook-tls
{{- end }}

{{/*
kopf's webhook server serves each admission handler at "/<handler id>": "validate"
(operator/otlp_operator/edge/pipeline_webhook.py) and "inject" (operator/otlp_operator/edge/injection_handlers.py);
tests/unit/test_chart_rbac.py checks both against the operator's registry.
*/}}
{{- define "otlp-operator.validatingPath" -}}
/validate
{{- end }}

{{- define "otlp-operator.mutatingPath" -}}
/inject
{{- end }}

{{/* The host name of webhook.url, or "" when the Service is used. */}}
{{- define "otlp-operator.webhookUrlHost" -}}
{{- if .Values.webhook.url }}
{{- (urlParse .Values.webhook.url).hostname }}
{{- end }}
{{- end }}

{{/* DNS names the serving certificate must cover, as a JSON list. */}}
{{- define "otlp-operator.webhookDnsNames" -}}
{{- $svc := include "otlp-operator.webhookServiceName" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $host := include "otlp-operator.webhookUrlHost" . }}
{{- if and $host (not (regexMatch "^[0-9.]+$|:" $host)) }}
{{- $names = append $names $host }}
{{- end }}
{{- toJson $names }}
{{- end }}

{{/* IP addresses the serving certificate must cover (webhook.url with an IP host), as a JSON list. */}}
{{- define "otlp-operator.webhookIPs" -}}
{{- $host := include "otlp-operator.webhookUrlHost" . }}
{{- if and $host (regexMatch "^[0-9.]+$|:" $host) }}
{{- toJson (list $host) }}
{{- else }}
{{- toJson list }}
{{- end }}
{{- end }}

{{/* A short fingerprint of the host names and IPs, stored on the Secret to know when to re-issue. */}}
{{- define "otlp-operator.webhookSansDigest" -}}
{{- printf "%s|%s" (include "otlp-operator.webhookDnsNames" .) (include "otlp-operator.webhookIPs" .) | sha256sum | trunc 16 }}
{{- end }}

{{/*
The generated TLS material as JSON {"ca", "crt", "key", "notAfter"} (PEMs base64-encoded, notAfter in
Unix seconds). Computed once per render.
*/}}
{{- define "otlp-operator.generatedTls" -}}
{{- if not (hasKey .Values "otlpOperatorGeneratedTls") }}
{{- $tls := dict }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "otlp-operator.webhookSecretName" .) }}
{{- $annotations := dig "metadata" "annotations" dict $secret }}
{{- $data := dig "data" dict $secret }}
{{- $notAfter := atoi (dig "telemetry.otlp-operator.io/not-after" "0" $annotations) }}
{{- $fresh := gt $notAfter (add (now | unixEpoch | atoi) 2592000) }}
{{- $sameNames := eq (dig "telemetry.otlp-operator.io/sans" "" $annotations) (include "otlp-operator.webhookSansDigest" .) }}
{{- if and $fresh $sameNames (hasKey $data "ca.crt") (hasKey $data "tls.crt") (hasKey $data "tls.key") }}
{{- $tls = dict "ca" (index $data "ca.crt") "crt" (index $data "tls.crt") "key" (index $data "tls.key") "notAfter" $notAfter }}
{{- else }}
{{- $days := int .Values.webhook.tls.validityDays }}
{{- $dnsNames := include "otlp-operator.webhookDnsNames" . | fromJsonArray }}
{{- $ips := include "otlp-operator.webhookIPs" . | fromJsonArray }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "otlp-operator.fullname" .)) $days }}
{{- $cert := genSignedCert (first $dnsNames) $ips $dnsNames $days $ca }}
{{- $expires := add (now | unixEpoch | atoi) (mul $days 86400) }}
{{- $tls = dict "ca" ($ca.Cert | b64enc) "crt" ($cert.Cert | b64enc) "key" ($cert.Key | b64enc) "notAfter" $expires }}
{{- end }}
{{- $_ := set .Values "otlpOperatorGeneratedTls" $tls }}
{{- end }}
{{- toJson (get .Values "otlpOperatorGeneratedTls") }}
{{- end }}

{{/* "generated", "certManager" or "existingSecret". */}}
{{- define "otlp-operator.tlsMode" -}}
{{- if .Values.certManager.enabled }}certManager
{{- else if .Values.webhook.tls.existingSecret }}existingSecret
{{- else }}generated
{{- end }}
{{- end }}

{{/* The base64 caBundle the API server trusts; "" with cert-manager (cainjector writes it). */}}
{{- define "otlp-operator.caBundle" -}}
{{- $mode := include "otlp-operator.tlsMode" . }}
{{- if eq $mode "existingSecret" }}
{{- required "webhook.tls.caBundle is required with webhook.tls.existingSecret" .Values.webhook.tls.caBundle }}
{{- else if eq $mode "generated" }}
{{- (include "otlp-operator.generatedTls" . | fromJson).ca }}
{{- end }}
{{- end }}

{{/* Annotations of both webhook configurations. */}}
{{- define "otlp-operator.webhookAnnotations" -}}
{{- if .Values.certManager.enabled }}
cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "otlp-operator.certificateName" .) }}
{{- end }}
{{- end }}

{{/* clientConfig of a webhook: the Service (or webhook.url) at the handler's path, plus the caBundle. */}}
{{- define "otlp-operator.clientConfig" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- if $root.Values.webhook.url }}
url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) $path | quote }}
{{- else }}
service:
  name: {{ include "otlp-operator.webhookServiceName" $root }}
  namespace: {{ $root.Release.Namespace }}
  path: {{ $path }}
  port: {{ $root.Values.webhook.servicePort }}
{{- end }}
{{- $caBundle := include "otlp-operator.caBundle" $root }}
{{- if $caBundle }}
caBundle: {{ $caBundle }}
{{- end }}
{{- end }}

{{/* namespaceSelector restricting a webhook to the watched namespaces (when not cluster-wide). */}}
{{- define "otlp-operator.watchedNamespacesExpression" -}}
- key: kubernetes.io/metadata.name
  operator: In
  values:
    {{- toYaml .Values.watchNamespaces | nindent 4 }}
{{- end }}

{{/* A digest of the serving material, on the pod template so a new certificate restarts the operator. */}}
{{- define "otlp-operator.tlsChecksum" -}}
{{- $mode := include "otlp-operator.tlsMode" . }}
{{- if eq $mode "generated" }}
{{- (include "otlp-operator.generatedTls" . | fromJson).crt | sha256sum | trunc 16 }}
{{- else if eq $mode "existingSecret" }}
{{- .Values.webhook.tls.caBundle | sha256sum | trunc 16 }}
{{- else }}
{{- "cert-manager" }}
{{- end }}
{{- end }}
