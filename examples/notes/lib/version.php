<?php
// The release marker. A release changes it here and in lib/marker.php; a page
// that shows two different values was served from two releases at once.
const NOTES_VERSION = 'v1.0.0';
