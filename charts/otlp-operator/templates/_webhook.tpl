{{/*
Webhook names, paths and TLS material.

TLS comes one of three ways (docs/operations.md):
  * certManager.enabled: cert-manager issues the Secret; cainjector fills in the caBundle.
  * webhook.tls.existingSecret: the user's Secret; the user's webhook.tls.caBundle.
  * otherwise ("operator") the operator issues and rotates its own CA and serving certificate
    (operator/otlp_operator/reconcile/webhook_tls.py): it keeps them in the (empty at install) Secret
    below and puts the CA into both webhook configurations. The chart renders no certificate and no
    caBundle, so a re-render (helm upgrade, a GitOps sync without a cluster) never changes either.
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

{{/* "operator", "certManager" or "existingSecret". */}}
{{- define "otlp-operator.tlsMode" -}}
{{- if .Values.certManager.enabled }}certManager
{{- else if .Values.webhook.tls.existingSecret }}existingSecret
{{- else }}operator
{{- end }}
{{- end }}

{{/* The base64 caBundle the API server trusts; "" with cert-manager (cainjector writes it) and with the
operator's own certificate (the operator writes it). */}}
{{- define "otlp-operator.caBundle" -}}
{{- if eq (include "otlp-operator.tlsMode" .) "existingSecret" }}
{{- required "webhook.tls.caBundle is required with webhook.tls.existingSecret" .Values.webhook.tls.caBundle }}
{{- end }}
{{- end }}

{{/* Where the operator writes its own certificate (the pod's /tmp emptyDir). */}}
{{- define "otlp-operator.ownCertDir" -}}
/tmp/webhook-tls
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

{{/*
The operator's TLS flags. A mounted Secret (cert-manager, existingSecret) is read from its mount and
reloaded in place when the kubelet updates it; the operator's own certificate is written to /tmp.
*/}}
{{- define "otlp-operator.tlsArgs" -}}
{{- if eq (include "otlp-operator.tlsMode" .) "operator" }}
{{- $dir := include "otlp-operator.ownCertDir" . }}
- --webhook-cert={{ $dir }}/tls.crt
- --webhook-key={{ $dir }}/tls.key
- --webhook-ca={{ $dir }}/ca.crt
- --webhook-tls-secret={{ .Release.Namespace }}/{{ include "otlp-operator.webhookSecretName" . }}
{{- range (include "otlp-operator.webhookDnsNames" . | fromJsonArray) }}
- --webhook-tls-san={{ . }}
{{- end }}
{{- range (include "otlp-operator.webhookIPs" . | fromJsonArray) }}
- --webhook-tls-san={{ . }}
{{- end }}
- --webhook-tls-configuration=validating/{{ include "otlp-operator.fullname" . }}
{{- if include "otlp-operator.injection" . }}
- --webhook-tls-configuration=mutating/{{ include "otlp-operator.fullname" . }}
{{- end }}
{{- else }}
- --webhook-cert={{ include "otlp-operator.webhookCertDir" . }}/tls.crt
- --webhook-key={{ include "otlp-operator.webhookCertDir" . }}/tls.key
{{- end }}
{{- end }}
