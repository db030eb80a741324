{{/*
Helpers of the scoring-pipeline chart. Values are exactly the values file that tekscore
pre-processing emits (ir.values.Values): nothing here may add a value of its own.
*/}}

{{/* The chart name. */}}
{{- define "scoring-pipeline.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release-wide name (release name), for objects that are not per service or flow. */}}
{{- define "scoring-pipeline.fullname" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* helm.sh/chart label value. */}}
{{- define "scoring-pipeline.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of a scoring service's objects (Service, Deployment, ConfigMap): "<job.id>-<service>",
cut to 63 with trailing dashes removed. Call with (dict "root" $ "name" $service.name).
*/}}
{{- define "scoring-pipeline.serviceName" -}}
{{- regexReplaceAll "-+$" (printf "%s-%s" .root.Values.job.id .name | trunc 63) "" }}
{{- end }}

{{/*
Where a python scoring service answers: its logical endpoint (name and port, as the values give
it) resolved to this chart's Service, http://<serviceName>:<port>.
Call with (dict "root" $ "name" $service.name "port" $service.port).
*/}}
{{- define "scoring-pipeline.serviceUrl" -}}
{{- printf "http://%s:%v" (include "scoring-pipeline.serviceName" (dict "root" .root "name" .name)) .port }}
{{- end }}

{{/*
What a python scoring service reads (`service.json`): its values entry as JSON, its logical
endpoint (port) resolved to its url. Call with (dict "root" $ "svc" $service).
*/}}
{{- define "scoring-pipeline.serviceConfig" -}}
{{- $url := include "scoring-pipeline.serviceUrl" (dict "root" .root "name" .svc.name "port" .svc.port) }}
{{- toJson (merge (dict "url" $url) (omit .svc "port")) }}
{{- end }}

{{/*
What a flow reads (`flow.json`): its values entry as JSON, each logical endpoint (a python
service and its port) resolved to the url of that service. Call with (dict "root" $ "flow" $flow).
*/}}
{{- define "scoring-pipeline.flowConfig" -}}
{{- $root := .root }}
{{- $services := dict }}
{{- range $name, $ep := .flow.services }}
{{- if $ep.url }}
{{- $_ := set $services $name $ep }}
{{- else }}
{{- $url := include "scoring-pipeline.serviceUrl" (dict "root" $root "name" $ep.service "port" $ep.port) }}
{{- $_ := set $services $name (merge (dict "url" $url) (omit $ep "service" "port")) }}
{{- end }}
{{- end }}
{{- toJson (merge (dict "services" $services) (omit .flow "services")) }}
{{- end }}

{{/*
The name of a scoring flow's objects (ConfigMap, Job or Deployment, http Service):
"<job.id>-flow-<flow>"; when longer than 63, cut to 54 plus "-" and 8 hex of its sha256 so
two long names never collide. Call with (dict "root" $ "name" $flow.name).
*/}}
{{- define "scoring-pipeline.flowName" -}}
{{- $full := printf "%s-flow-%s" .root.Values.job.id .name }}
{{- if le (len $full) 63 }}
{{- $full }}
{{- else }}
{{- printf "%s-%s" (regexReplaceAll "-+$" (trunc 54 $full) "") (sha256sum $full | trunc 8) }}
{{- end }}
{{- end }}

{{/* Selector labels: name and instance (+ component and the object's own label, by caller). */}}
{{- define "scoring-pipeline.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scoring-pipeline.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Common labels of every object. */}}
{{- define "scoring-pipeline.labels" -}}
helm.sh/chart: {{ include "scoring-pipeline.chart" . }}
{{ include "scoring-pipeline.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tekscore
tekscore.dev/job: {{ .Values.job.id | quote }}
tekscore.dev/pipeline: {{ .Values.job.pipeline | quote }}
{{- end }}

{{/* The platform image: [registry/]repository:tag. */}}
{{- define "scoring-pipeline.image" -}}
{{- include "scoring-pipeline.imageOf" (dict "image" .Values.global.image "repository" .Values.global.image.repository) }}
{{- end }}

{{/*
The image of a scoring service: its runtime's repository (global.runtimes.<runtime>.image,
default the platform image's) with the platform image's registry and tag.
Call with (dict "root" $ "runtime" $svc.runtime).
*/}}
{{- define "scoring-pipeline.serviceImage" -}}
{{- $img := .root.Values.global.image }}
{{- $runtime := get (.root.Values.global.runtimes | default dict) .runtime | default dict }}
{{- include "scoring-pipeline.imageOf" (dict "image" $img "repository" ($runtime.image | default $img.repository)) }}
{{- end }}

{{/* [registry/]repository:tag of (dict "image" global.image "repository" repository). */}}
{{- define "scoring-pipeline.imageOf" -}}
{{- if .image.registry }}
{{- printf "%s/%s:%s" .image.registry .repository .image.tag }}
{{- else }}
{{- printf "%s:%s" .repository .image.tag }}
{{- end }}
{{- end }}

{{/* imagePullSecrets from global.imagePullSecrets (Secret names). */}}
{{- define "scoring-pipeline.imagePullSecrets" -}}
{{- with .Values.global.imagePullSecrets -}}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pod-level security context of every pod. */}}
{{- define "scoring-pipeline.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 10001
  runAsGroup: 10001
  fsGroup: 10001
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* Container-level security context of every container. */}}
{{- define "scoring-pipeline.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* Env common to every container: logging (and trace export when enabled). */}}
{{- define "scoring-pipeline.commonEnv" -}}
- name: TEKSCORE_JOB_ID
  value: {{ .Values.job.id | quote }}
- name: TEKSCORE_LOG_LEVEL
  value: {{ .Values.global.logLevel | default "info" | quote }}
- name: TEKSCORE_LOG_FORMAT
  value: {{ .Values.global.logFormat | default "json" | quote }}
{{- with .Values.global.tracing }}
{{- if and .enabled .endpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ .endpoint | quote }}
{{- end }}
{{- end }}
{{- end }}
