{{/* The base name of every object: "maskmesh" unless overridden. */}}
{{- define "maskmesh.fullname" -}}
{{- default "maskmesh" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "maskmesh.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; include with (dict "ctx" $ "component" "webhook"). */}}
{{- define "maskmesh.labels" -}}
helm.sh/chart: {{ include "maskmesh.chart" .ctx }}
app.kubernetes.io/name: {{ include "maskmesh.fullname" .ctx }}-{{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: maskmesh
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end -}}

{{- define "maskmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "maskmesh.fullname" .ctx }}-{{ .component }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{/* An image reference; include with (dict "ctx" $ "image" .Values.webhook.image). */}}
{{- define "maskmesh.image" -}}
{{- $tag := .image.tag | default .ctx.Values.image.tag | default .ctx.Chart.AppVersion -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .ctx.Values.image.registry) .image.repository $tag -}}
{{- end -}}

{{- define "maskmesh.webhookService" -}}
{{- include "maskmesh.fullname" . }}-webhook
{{- end -}}

{{- define "maskmesh.webhookSecret" -}}
{{- include "maskmesh.fullname" . }}-webhook-tls
{{- end -}}

{{/* Namespaces the webhooks never act in: kube-system, the release namespace, and more. */}}
{{- define "maskmesh.excludedNamespaces" -}}
{{- $ns := list "kube-system" .Release.Namespace -}}
{{- range .Values.webhook.excludeNamespaces }}{{ $ns = append $ns . }}{{ end -}}
{{- toJson (uniq $ns) -}}
{{- end -}}

{{/* Pod and container security contexts: the restricted Pod Security Standard. */}}
{{- define "maskmesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "maskmesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* topologySpreadConstraints: null gives the defaults, a list (even empty) is used as is. */}}
{{- define "maskmesh.topologySpread" -}}
{{- $c := .values.topologySpreadConstraints -}}
{{- if kindIs "invalid" $c }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "maskmesh.selectorLabels" . | nindent 8 }}
  - maxSkew: 1
    topologyKey: topology.kubernetes.io/zone
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "maskmesh.selectorLabels" . | nindent 8 }}
{{- else if $c }}
topologySpreadConstraints:
  {{- toYaml $c | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Scheduling knobs shared by the Deployments. */}}
{{- define "maskmesh.scheduling" -}}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .ctx.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "maskmesh.topologySpread" . }}
{{- end -}}
