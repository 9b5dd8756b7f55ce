<?php
declare(strict_types=1);
require __DIR__ . '/../lib/version.php';
header('Content-Type: text/plain; charset=utf-8');
echo "berth example plugin ", PLUGIN_VERSION, "\n";
echo "php ", PHP_VERSION, " (", PHP_SAPI, ")\n";
echo "open_basedir ", ini_get('open_basedir'), "\n";
echo "exec disabled: ", function_exists('exec') ? 'no' : 'yes', "\n";
