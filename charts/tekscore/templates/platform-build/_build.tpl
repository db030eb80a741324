{{/*
The platform build (docs/charts.md): the container build steps the enabled sub-charts declare in
their values (`build.steps`), as a JSON list, each with the sub-chart it comes from. A sub-chart
that is disabled has no values here, so its steps are left out. Checked: unique names, and every
`after` and `baseImage` naming a step of an enabled sub-chart.
*/}}
{{- define "tekscore.buildSteps" -}}
{{- $steps := list }}
{{- range $chart := keys .Values | sortAlpha }}
{{- $values := get $.Values $chart }}
{{- if and (kindIs "map" $values) (hasKey $values "build") }}
{{- range $values.build.steps }}
{{- $steps = append $steps (merge (dict "chart" $chart) .) }}
{{- end }}
{{- end }}
{{- end }}
{{- $names := list }}
{{- range $steps }}
{{- if has .name $names }}
{{- fail (printf "build step %q is declared twice (the second in %s)" .name .chart) }}
{{- end }}
{{- $names = append $names .name }}
{{- end }}
{{- range $steps }}
{{- $step := . }}
{{- range (concat (.after | default list) (ternary (list .baseImage) list (hasKey . "baseImage"))) }}
{{- if not (has . $names) }}
{{- fail (printf "build step %q of %s needs %q, which no enabled sub-chart builds (steps: %s)" $step.name $step.chart . (join ", " $names)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $steps }}
{{- end }}

{{/* Where the images are pushed: the platform image's registry and folder ("ghcr.io/tekscore"). */}}
{{- define "tekscore.buildRegistry" -}}
{{- $folder := dir .Values.image.repository }}
{{- if eq $folder "." }}{{ .Values.image.registry }}
{{- else if .Values.image.registry }}{{ printf "%s/%s" .Values.image.registry $folder }}
{{- else }}{{ $folder }}
{{- end }}
{{- end }}

{{/* The Pipeline task of a build step. */}}
{{- define "tekscore.buildTaskName" -}}
{{- if .taskRef }}{{ .name }}{{ else }}{{ printf "build-%s" .name | trunc 63 | trimSuffix "-" }}{{ end }}
{{- end }}

{{/* Labels of the platform build's resources. */}}
{{- define "tekscore.buildLabels" -}}
{{ include "tekscore.labels" . }}
app.kubernetes.io/component: platform-build
{{- end }}

{{/* Namespace of the platform build's Pipeline and Tasks. */}}
{{- define "tekscore.buildNamespace" -}}
{{- .Values.global.platformBuild.namespace | default .Release.Namespace }}
{{- end }}

{{/*
The enabled model runtimes, from the scoring-server sub-charts (values with supportedModels):
name (the sub-chart's name without `scoring-server-`) -> {supportedModels, image?}, the image
beside the platform image (same registry and folder), none for the platform image itself.
The scheduler reads them in its globals (`runtimes`, docs/runtimes.md).
*/}}
{{- define "tekscore.runtimes" -}}
{{- $folder := dir .Values.image.repository }}
{{- $runtimes := dict }}
{{- range $chart := keys .Values | sortAlpha }}
{{- $values := get $.Values $chart }}
{{- if and (kindIs "map" $values) (hasKey $values "supportedModels") }}
{{- $runtime := dict "supportedModels" $values.supportedModels }}
{{- if $values.image }}
{{- $_ := set $runtime "image" (ternary $values.image (printf "%s/%s" $folder $values.image) (eq $folder ".")) }}
{{- end }}
{{- $_ := set $runtimes ($chart | trimPrefix "scoring-server-") $runtime }}
{{- end }}
{{- end }}
{{- toJson $runtimes }}
{{- end }}
