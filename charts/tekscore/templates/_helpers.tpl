{{/* Helpers of the tekscore platform chart. */}}

{{- define "tekscore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The scheduler's object name: fullnameOverride, or release (+ chart name unless contained). */}}
{{- define "tekscore.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tekscore.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tekscore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tekscore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tekscore.labels" -}}
helm.sh/chart: {{ include "tekscore.chart" . }}
{{ include "tekscore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tekscore
{{- end }}

{{- define "tekscore.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.registry }}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "tekscore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tekscore.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where jobs live: PipelineRuns, the Tekton Pipeline/Tasks, the task ServiceAccount, releases. */}}
{{- define "tekscore.jobsNamespace" -}}
{{- .Values.jobsNamespace | default .Release.Namespace }}
{{- end }}

{{/* The URL flows report to: globals.callbackUrl, or this release's scheduler Service. */}}
{{- define "tekscore.callbackUrl" -}}
{{- if .Values.globals.callbackUrl }}
{{- .Values.globals.callbackUrl }}
{{- else }}
{{- printf "http://%s.%s.svc:%d" (include "tekscore.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}
{{- end }}
