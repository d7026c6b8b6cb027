#!/bin/sh
# The plan of a pull request (merge request) as one comment on it, edited in place on every new
# push: `lb plan --repo` of the head against the base (no kernel, no root), rendered as Markdown,
# posted through the forge's comment API. An invalid head is commented with its diagnostics
# (file:line:column) and fails the job. Used by the GitHub Actions, Gitea Actions and GitLab CI
# templates beside it; needs sh, curl, jq and lb.
#
# Environment (the templates set it):
#   LB_FORGE    github | gitea | gitlab
#   LB_API      API base URL: https://api.github.com, https://gitea.example/api/v1, https://gitlab.example/api/v4
#   LB_PROJECT  owner/repo (GitHub, Gitea), or the GitLab project id
#   LB_PR       the pull request (GitLab: merge request iid) number
#   LB_TOKEN    a token that may comment on it
#   LB_BASE, LB_HEAD  the commits to compare (the head's config is planned against the base's)
#   LB_PATH     the config inside the repository (default: the root)
#   LB_REPO     the repository to read them from (default: the checkout, .)
set -eu

: "${LB_FORGE:?}" "${LB_API:?}" "${LB_PROJECT:?}" "${LB_PR:?}" "${LB_TOKEN:?}" "${LB_BASE:?}" "${LB_HEAD:?}"
LB_PATH="${LB_PATH:-}"
LB_REPO="${LB_REPO:-.}"
API="${LB_API%/}"
MARKER="<!-- lb-plan ${LB_PATH:-.} -->"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. The plan (exit 0 no changes, 2 changes, 1 invalid head or error).
set -- --repo "$LB_REPO" --base "$LB_BASE" --head "$LB_HEAD" --format markdown --detailed-exitcode
[ -n "$LB_PATH" ] && set -- "$@" --path "$LB_PATH"
rc=0
lb plan "$@" >"$tmp/plan.md" 2>"$tmp/plan.err" || rc=$?
{
  echo "$MARKER"
  if [ "$rc" -eq 1 ]; then
    echo "### lb plan: the config at $(echo "$LB_HEAD" | cut -c1-12) is not valid"
    echo
    echo '```'
    head -c 60000 "$tmp/plan.err"
    echo '```'
  else
    head -c 60000 "$tmp/plan.md"
    [ "$(wc -c <"$tmp/plan.md")" -gt 60000 ] && printf '\n\n(plan cut at 60000 bytes: run the lb plan command above for all of it)\n'
    [ -s "$tmp/plan.err" ] && { echo; echo '```'; head -c 4000 "$tmp/plan.err"; echo '```'; }
  fi
  echo
  echo "<sub>lb plan --base $(echo "$LB_BASE" | cut -c1-12) --head $(echo "$LB_HEAD" | cut -c1-12)${LB_PATH:+ --path $LB_PATH}</sub>"
} >"$tmp/body.md"
jq -Rs '{body: .}' <"$tmp/body.md" >"$tmp/body.json"

# 2. The forge's comment API.
case "$LB_FORGE" in
  github) AUTH="Authorization: Bearer $LB_TOKEN"; LIST="$API/repos/$LB_PROJECT/issues/$LB_PR/comments"; EDIT="$API/repos/$LB_PROJECT/issues/comments"; VERB=PATCH ;;
  gitea)  AUTH="Authorization: token $LB_TOKEN";  LIST="$API/repos/$LB_PROJECT/issues/$LB_PR/comments"; EDIT="$API/repos/$LB_PROJECT/issues/comments"; VERB=PATCH ;;
  gitlab) PROJECT="$(printf %s "$LB_PROJECT" | jq -sRr @uri)"
          AUTH="PRIVATE-TOKEN: $LB_TOKEN"; LIST="$API/projects/$PROJECT/merge_requests/$LB_PR/notes"; EDIT="$LIST"; VERB=PUT ;;
  *) echo "lb-plan-comment: LB_FORGE must be github, gitea or gitlab" >&2; exit 1 ;;
esac

call() { # METHOD URL [BODYFILE] -> the response in $tmp/resp; fails on a non-2xx answer
  code="$(curl -sS -X "$1" -H "$AUTH" -H 'Accept: application/json' -H 'Content-Type: application/json' \
    ${3:+--data-binary "@$3"} -o "$tmp/resp" -w '%{http_code}' "$2")"
  case "$code" in 2*) ;; *) echo "lb-plan-comment: $1 $2: HTTP $code: $(head -c 500 "$tmp/resp")" >&2; exit 1 ;; esac
}

# The comment this job wrote before, found by its marker (pages of 100, at most 50 pages).
id=""
page=1
while [ -z "$id" ] && [ "$page" -le 50 ]; do
  call GET "$LIST?per_page=100&page=$page"
  id="$(jq -r --arg m "$MARKER" '[.[] | select((.body // "") | startswith($m))][0].id // empty' "$tmp/resp")"
  [ "$(jq 'length' "$tmp/resp")" -lt 100 ] && break
  page=$((page + 1))
done

if [ -n "$id" ]; then
  call "$VERB" "$EDIT/$id" "$tmp/body.json"
  echo "lb-plan-comment: updated comment $id"
else
  call POST "$LIST" "$tmp/body.json"
  echo "lb-plan-comment: created comment $(jq -r .id "$tmp/resp")"
fi

# 3. An invalid head fails the job (after the comment says why); changes do not.
[ "$rc" -eq 1 ] && exit 1
exit 0
