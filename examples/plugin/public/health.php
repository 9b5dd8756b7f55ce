<?php
// Probed by berth before a release takes traffic: answers 200 only when PHP
// runs and the release's files are all readable.
declare(strict_types=1);
header('Content-Type: text/plain');
header('Cache-Control: no-store');
$ok = is_readable(__DIR__ . '/../lib/version.php') && is_readable(__DIR__ . '/../lib/marker.php');
http_response_code($ok ? 200 : 503);
echo $ok ? "ok\n" : "missing files\n";
