#!/bin/sh
# The enum options of the model and dataset plugins through qhost itself:
# `qhost describe` lists every allowed spelling, and `qhost check` refuses any
# other spelling with the key and the allowed values (the schema's enum error).
#   enum_options.sh QHOST EXPERIMENTS_DIR
set -eu
qhost=$1; exp=$2
status=0

orders='one of "cbsa" | "cbas" | "cabs" | "bacs" | "bcas"'
stems='one of "auto" | "imagenet" | "cifar" | "tresnet" | "tresnet_maxpool"'
norms='one of "batchnorm" | "static_bn" | "freeze_bn" | "reverse_bn" | "instance_norm" | "group_norm"'
acts='one of "relu" | "prelu" | "none" | "relu6" | "leaky_relu"'
pads='one of "reflect" | "zero"'

# expect_describe COMPONENT FRAGMENT...: every FRAGMENT is in `qhost describe COMPONENT`.
expect_describe() {
  component=$1; shift
  text=$("$qhost" describe "$component")
  for fragment in "$@"; do
    case $text in
      *"$fragment"*) ;;
      *) echo "enum_options.sh: 'qhost describe $component' lacks: $fragment" >&2; status=1 ;;
    esac
  done
}

# expect_refused FILE KEY VALUE ALLOWED: `qhost check FILE --set KEY="VALUE"` fails with
# `KEY: "VALUE" is not one of ALLOWED` (the hint is the validator's suggestion).
expect_refused() {
  file=$1 key=$2 value=$3 allowed=$4
  if out=$("$qhost" check "$exp/$file" --set "$key=\"$value\"" 2>&1); then
    echo "enum_options.sh: $file with $key = \"$value\" passed the check" >&2; status=1; return
  fi
  case $out in
    *"error[config]: "*"$key: \"$value\" is not one of $allowed"*) ;;
    *) echo "enum_options.sh: $file with $key = \"$value\": unexpected message:" >&2; echo "$out" >&2; status=1 ;;
  esac
}

for model in resnet prone_resnet fixup_resnet bireal_resnet; do
  expect_describe "model/$model" "$orders" "$stems" "$norms" "$acts"
done
expect_describe model/groupnet_resnet 'one of "cabs" | "cbsa" | "cbas" | "bacs" | "bcas"' "$stems" "$norms" "$acts"
expect_describe model/torch_resnet "$norms" "$acts"
expect_describe dataset/cifar 'one of "cifar10" | "cifar100"' 'one of "fine" | "coarse"' "$pads"
expect_describe dataset/imagefolder "$pads"
expect_describe dataset/idx "$pads"

expect_refused quickstart.toml model.stem tresnet-maxpool \
  '"auto", "imagenet", "cifar", "tresnet", "tresnet_maxpool"'
expect_refused quickstart.toml model.order abcs '"cbsa", "cbas", "cabs", "bacs", "bcas"'
expect_refused quickstart.toml data.pad_mode zeros '"reflect", "zero"'
expect_refused lsq_torchr18_2bit.toml model.norm bn \
  '"batchnorm", "static_bn", "freeze_bn", "reverse_bn", "instance_norm", "group_norm"'
expect_refused lsq_torchr18_2bit.toml model.activation ReLU '"relu", "prelu", "none", "relu6", "leaky_relu"'
expect_refused lsq_r20_cifar100_2bit_cb_2bitskip.toml data.variant cifar-100 '"cifar10", "cifar100"'
expect_refused lsq_r20_cifar100_2bit_cb_2bitskip.toml data.label Coarse '"fine", "coarse"'
exit $status
